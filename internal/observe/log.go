package observe

import (
	"fmt"
	"io"
	"log/slog"
	"unicode/utf8"
)

// Attribute keys shared by every component's logs.
const (
	KeySPIFFEID    = "spiffe_id"
	KeyPeer        = "peer"
	KeyDecision    = "decision"
	KeyRule        = "rule"
	KeyPolicy      = "policy"
	KeyMode        = "mode"
	KeyService     = "service"
	KeyNamespace   = "namespace"
	KeySerial      = "serial"
	KeyNotAfter    = "not_after"
	KeyFingerprint = "fingerprint"
	KeyAddr        = "addr"
	KeyMethod      = "method"
	KeyPath        = "path"
	KeyStatus      = "status"
	KeyGRPCStatus  = "grpc_status"
	KeyDuration    = "duration"
	KeyReason      = "reason"
	KeyVersion     = "policy_version"
	KeyComponent   = "component"
	KeyError       = "err"
)

// NewLogger returns a slog.Logger writing to w in format ("json" or "text")
// at level ("debug", "info", "warn", "error"). A string or error attribute
// that is not valid UTF-8 (a path or method as a caller sent it) is logged
// through Printable, its bad bytes as \xHH, where the handler would
// otherwise write U+FFFD and lose what was sent. (Both handlers already
// escape control characters, so valid strings are logged as they are.)
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: validUTF8}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not one of json, text", format)
	}
}

// Discard is a logger that drops everything, for tests and library defaults.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// validUTF8 is the handlers' ReplaceAttr: it passes string and error
// values that are not valid UTF-8 through Printable.
func validUTF8(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); !utf8.ValidString(s) {
			a.Value = slog.StringValue(Printable(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s := err.Error(); !utf8.ValidString(s) {
				a.Value = slog.StringValue(Printable(s))
			}
		}
	}
	return a
}
