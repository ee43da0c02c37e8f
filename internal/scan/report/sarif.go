package report

import (
	"encoding/json"
	"io"
	"sort"

	"meshward.dev/meshward/internal/scan"
)

// SARIF 2.1.0 documents, limited to what meshward writes.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          map[string]any     `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification,omitempty"`
}

// SARIFLevel maps a severity to a SARIF result level.
func SARIFLevel(s scan.Severity) string {
	switch s {
	case scan.SeverityCritical, scan.SeverityHigh:
		return "error"
	case scan.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score GitHub code scanning reads.
func securitySeverity(s scan.Severity) string {
	return [...]string{"1.0", "3.0", "5.5", "8.0", "9.5"}[s]
}

// SARIF writes a SARIF 2.1.0 log: the rule catalogue as the driver's rules,
// one result per finding with file/line and a logical location naming the
// object, and suppressed findings as results with a suppression.
func SARIF(w io.Writer, res scan.Result, rules []scan.Rule, version string) error {
	idx := map[string]int{}
	sorted := append([]scan.Rule(nil), rules...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	drv := sarifDriver{Name: "meshward", Version: version, InformationURI: "https://meshward.dev/docs/rules", Rules: []sarifRule{}}
	for i, r := range sorted {
		idx[r.ID] = i
		drv.Rules = append(drv.Rules, sarifRule{
			ID: r.ID, Name: r.Category,
			ShortDescription:     sarifText{Text: r.Title},
			FullDescription:      sarifText{Text: r.Description},
			Help:                 sarifText{Text: r.Remediation, Markdown: "**Fix**\n\n```yaml\n" + r.Remediation + "\n```"},
			DefaultConfiguration: sarifConfig{Level: SARIFLevel(r.Severity)},
			Properties: map[string]any{
				"tags":              []string{"security", r.Category, r.Mesh},
				"security-severity": securitySeverity(r.Severity),
				"precision":         "high",
			},
		})
	}
	results := []sarifResult{}
	add := func(f scan.Finding, suppressed bool) {
		i, ok := idx[f.Rule]
		if !ok {
			i = -1
		}
		loc := sarifLocation{LogicalLocations: []sarifLogical{{
			Name:               f.Name,
			FullyQualifiedName: scan.Ref{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}.String(),
			Kind:               "object",
		}}}
		if u := uri(f.File); u != "" {
			loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: u}}
			if f.Line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
			}
		}
		r := sarifResult{
			RuleID: f.Rule, RuleIndex: i, Level: SARIFLevel(f.Severity),
			Message:             sarifText{Text: f.Message + " Fix: " + f.Remediation},
			Locations:           []sarifLocation{loc},
			PartialFingerprints: map[string]string{"meshwardObject/v1": Fingerprint(f)},
			Properties: map[string]any{
				"category": f.Category, "severity": f.Severity.String(), "mesh": f.Mesh,
				"kind": f.Kind, "namespace": f.Namespace, "name": f.Name,
			},
		}
		if suppressed {
			r.Suppressions = []sarifSuppression{{Kind: "inSource", Justification: "suppressed by meshward.dev/ignore or --ignore"}}
		}
		results = append(results, r)
	}
	for _, f := range res.Findings {
		add(f, false)
	}
	for _, f := range res.Suppressed {
		add(f, true)
	}
	doc := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: drv}, Results: results}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
