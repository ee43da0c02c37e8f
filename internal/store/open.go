package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Options are what every store implementation is opened with.
type Options struct {
	// Sealer, when non-nil, encrypts the CA blob at rest.
	Sealer *Sealer
}

// Opener opens the store a URL names. u.Scheme is the one it was
// registered for; a plain path arrives as a URL with scheme PathScheme and
// only Path set.
type Opener func(ctx context.Context, u *url.URL, opts Options) (Store, error)

// PathScheme is the scheme a plain path (no "scheme://") is opened with.
const PathScheme = "bolt"

// ErrLocation is wrapped by every error about the store location itself
// (not a URL, an unknown scheme, a URL the implementation cannot take), as
// opposed to a store that cannot be opened: callers report it as an input
// error.
var ErrLocation = errors.New("store location")

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes an implementation available to Open under scheme (lower
// case). It is called from the implementation's init; registering a scheme
// twice panics, as database/sql.Register does.
func Register(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if open == nil {
		panic("store: Register opener is nil")
	}
	if _, dup := openers[scheme]; dup {
		panic("store: Register called twice for scheme " + scheme)
	}
	openers[scheme] = open
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Open opens the store that rawURL names: "scheme://..." for a registered
// implementation (bolt:///path/to/meshward.db), or a plain file path for
// the default (bolt) one. An unknown scheme is an error that lists the
// supported ones. Errors never repeat a password the URL holds.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	openersMu.RLock()
	open := openers[u.Scheme]
	openersMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("%w %s: unknown scheme %q (supported: %s, or a plain file path)", ErrLocation, u.Redacted(), u.Scheme, supported())
	}
	return open(ctx, u, opts)
}

func parseURL(rawURL string) (*url.URL, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("%w is empty (want a file path or %s)", ErrLocation, supported())
	}
	if !strings.Contains(rawURL, "://") {
		return &url.URL{Scheme: PathScheme, Path: rawURL}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the input, which may hold a password.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%w: not a URL: %w", ErrLocation, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

func supported() string {
	var b strings.Builder
	for i, s := range Schemes() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s + "://")
	}
	if b.Len() == 0 {
		return "no scheme registered"
	}
	return b.String()
}
