package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

var funcs = template.FuncMap{
	"utc":      utcText,
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"unix":     func(t time.Time) int64 { return t.Unix() },
	"relative": relative,
	"short":    short,
	"label":    label,
	"lower":    strings.ToLower,
}

// utcText is a time for people, in UTC ("—" for none).
func utcText(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// relative says how far t is from now: "in 29m 59s" or "3m 2s ago". The
// page's script keeps countdowns ticking between refreshes.
func relative(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := t.Sub(now)
	if d >= 0 {
		return "in " + human(d)
	}
	return human(-d) + " ago"
}

// human is a duration in its two largest units.
func human(d time.Duration) string {
	d = d.Truncate(time.Second)
	days := int64(d / (24 * time.Hour))
	h := int64(d/time.Hour) % 24
	m := int64(d/time.Minute) % 60
	s := int64(d/time.Second) % 60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// short abbreviates hashes ("sha256:0123…").
func short(s string, n int) string {
	if i := strings.IndexByte(s, ':'); i >= 0 && i < 10 {
		n += i + 1
	}
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
