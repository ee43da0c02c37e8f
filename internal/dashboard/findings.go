package dashboard

import (
	"context"
	"fmt"
	"strings"
	"time"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/rules"
)

// findingsTTL is how long a scan result is reused when the policy has not
// changed (the mesh file may have; certificate rules depend on the time).
const findingsTTL = time.Minute

// Findings is the scanner's view of the running mesh's configuration: the
// mesh file `up` runs and the policy set in force.
type Findings struct {
	ScannedAt time.Time      `json:"scanned_at"`
	Inputs    []string       `json:"inputs"`
	Findings  []scan.Finding `json:"findings"`
	Summary   scan.Summary   `json:"summary"`
	Error     string         `json:"error,omitempty"`
}

func (d *Dashboard) findings(ctx context.Context) Findings {
	now := d.cfg.Now()
	cur := d.cfg.Source.CurrentPolicy()
	key := ""
	if cur != nil {
		key = fmt.Sprintf("%d %s", cur.GetRevision(), cur.GetVersion())
	}
	d.findMu.Lock()
	defer d.findMu.Unlock()
	if d.find != nil && d.findKey == key && now.Sub(d.find.ScannedAt) < findingsTTL {
		return *d.find
	}
	v := Findings{ScannedAt: now.UTC(), Inputs: []string{}, Findings: []scan.Finding{}}
	var objs []*scan.Object
	var errs []string
	if m := d.cfg.Mesh; m != nil && m.File != "" {
		got, err := manifest.Load([]string{m.File}, nil)
		if err != nil {
			errs = append(errs, err.Error())
		}
		objs = append(objs, got...)
		v.Inputs = append(v.Inputs, m.File)
	}
	if cur != nil {
		for _, f := range cur.GetFiles() {
			got, err := manifest.Decode(f.GetName(), f.GetContent())
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			objs = append(objs, got...)
		}
		v.Inputs = append(v.Inputs, fmt.Sprintf("policy revision %d (%d files)", cur.GetRevision(), len(cur.GetFiles())))
	} else if m := d.cfg.Mesh; m != nil && m.Policies != "" {
		dir := m.PoliciesDir()
		got, err := manifest.Load([]string{dir}, nil)
		if err != nil {
			errs = append(errs, err.Error())
		}
		objs = append(objs, got...)
		v.Inputs = append(v.Inputs, dir)
	}
	if ctx.Err() == nil {
		res := scan.Run(scan.NewModel(objs, now), rules.All(), nil)
		if res.Findings != nil {
			v.Findings = res.Findings
		}
	}
	for _, f := range v.Findings {
		v.Summary.Add(f.Severity)
	}
	if len(errs) > 0 {
		v.Error = strings.Join(errs, "; ")
	}
	d.find, d.findKey = &v, key
	return v
}
