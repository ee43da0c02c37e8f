package dashboard

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"meshward.dev/meshward/internal/store"
)

// Bounds of the denials view.
const (
	auditWindow  = 24 * time.Hour // how far back the view reads the audit trail
	maxDenies    = 50
	maxAuditRows = 50
)

// Denials is the denials and audit view.
type Denials struct {
	Now    time.Time `json:"now"`
	Since  time.Time `json:"since"`
	Total  int       `json:"denies_in_window"` // denies since Since, of which Denies lists the latest
	Denies []Deny    `json:"denies"`
	Events []Event   `json:"events"` // the latest other audit events (admin actions)
	Error  string    `json:"error,omitempty"`
}

// Deny is one denied (or, in audit mode, would-be denied) request or
// connection.
type Deny struct {
	Time        time.Time `json:"time"`
	Source      string    `json:"source"`
	Destination string    `json:"destination"`
	Method      string    `json:"method,omitempty"`
	Path        string    `json:"path,omitempty"`
	Port        int       `json:"port,omitempty"`
	Rule        string    `json:"rule,omitempty"`
	Policy      string    `json:"policy,omitempty"`
	Mode        string    `json:"mode,omitempty"`
	Version     string    `json:"policy_version,omitempty"`
	Commit      string    `json:"git_commit,omitempty"`
	Reported    time.Time `json:"reported,omitzero"` // the time the sidecar claims; Time is when it was received
	Outcome     string    `json:"outcome"`
	Detail      string    `json:"detail"` // as stored
	RuleAnchor  string    `json:"-"`
}

// Event is an audit event other than a deny.
type Event struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Actor   string    `json:"actor"`
	Subject string    `json:"subject,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Outcome string    `json:"outcome"`
}

// isDeny reports whether an audit action is a request or connection deny.
func isDeny(action string) bool {
	return action == "request.deny" || action == "request.audit-deny"
}

func (d *Dashboard) denials(ctx context.Context) Denials {
	now := d.cfg.Now()
	since := now.Add(-auditWindow)
	events, err := d.cfg.Source.AuditEvents(ctx, since)
	v := buildDenials(events, now, since)
	if err != nil {
		v.Error = "audit trail unavailable: " + err.Error()
	}
	return v
}

// buildDenials keeps the latest denies and other events, newest first.
func buildDenials(events []store.AuditEvent, now, since time.Time) Denials {
	v := Denials{Now: now.UTC(), Since: since.UTC(), Denies: []Deny{}, Events: []Event{}}
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		if isDeny(e.Action) {
			v.Total++
			if len(v.Denies) < maxDenies {
				v.Denies = append(v.Denies, denyOf(e))
			}
			continue
		}
		if len(v.Events) < maxAuditRows {
			v.Events = append(v.Events, Event{Time: e.Time.UTC(), Action: e.Action, Actor: e.Actor, Subject: e.Subject, Detail: e.Detail, Outcome: e.Outcome})
		}
	}
	return v
}

// denyOf is the view of one deny event: its fields, as the control plane
// stored them. An event without them (stored before they existed, or a
// summary of denies that were not itemized) shows its detail, and what
// parseLegacyDetail finds in it.
func denyOf(e store.AuditEvent) Deny {
	d := Deny{Time: e.Time.UTC(), Source: e.Actor, Destination: e.Subject, Outcome: e.Outcome, Detail: e.Detail}
	if f := e.Deny; f != nil {
		d.Method, d.Path, d.Port = f.Method, f.Path, int(f.Port)
		d.Rule, d.Policy, d.Mode, d.Version, d.Commit = f.Rule, f.Policy, f.Mode, f.PolicyVersion, f.GitCommit
		if !f.Reported.IsZero() {
			d.Reported = f.Reported.UTC()
		}
	} else {
		parseLegacyDetail(&d)
	}
	if d.Policy != "" && d.Rule != "" && !strings.HasPrefix(d.Rule, "default-") {
		d.RuleAnchor = ruleAnchor(d.Policy + "/" + d.Rule)
	} else if d.Policy != "" {
		d.RuleAnchor = "policy-" + anchorSafe(d.Policy)
	}
	return d
}

// legacyDetail is the control plane's deny detail: "METHOD PATH port N
// rule=R policy=P mode=M version=V [commit=C]" ("connection" for L4).
// Only events stored before AuditEvent.Deny existed need it: they leave
// the view's 24-hour window a day after an upgrade, and then this parser
// can go. It finds nothing in a path with a space, which is why the
// fields are stored now.
var legacyDetail = regexp.MustCompile(`^(?:(\S+) (\S+)|connection) port (\d+)((?: [a-z]+=\S*)*)$`)

// parseLegacyDetail fills d's fields from its detail text, if the text
// has the control plane's old shape.
func parseLegacyDetail(d *Deny) {
	m := legacyDetail.FindStringSubmatch(d.Detail)
	if m == nil {
		return
	}
	d.Method, d.Path = m[1], m[2]
	d.Port, _ = strconv.Atoi(m[3])
	for _, kv := range strings.Fields(m[4]) {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "rule":
			d.Rule = val
		case "policy":
			d.Policy = val
		case "mode":
			d.Mode = val
		case "version":
			d.Version = val
		case "commit":
			d.Commit = val
		}
	}
}
