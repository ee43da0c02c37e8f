package observe

import (
	"fmt"
	"io"
	"log/slog"
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
	KeyDuration    = "duration"
	KeyReason      = "reason"
	KeyVersion     = "policy_version"
	KeyComponent   = "component"
	KeyError       = "err"
)

// NewLogger returns a slog.Logger writing to w in format ("json" or "text")
// at level ("debug", "info", "warn", "error").
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
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
