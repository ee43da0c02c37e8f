// Package observe sets up logging (log/slog), and holds the attribute keys
// every component uses, so that logs from the control plane, the sidecars and
// the CLI can be joined on the same names. It does not decide what to log.
package observe
