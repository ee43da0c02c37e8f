package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"meshward.dev/meshward/internal/scan/report"
	"meshward.dev/meshward/internal/scan/rules"
)

// The SARIF 2.1.0 JSON schema (sarif-schema-2.1.0.json, OASIS) could not be
// vendored here: no copy is reachable from this build environment. sarifSchema
// transcribes, for every object type meshward emits, the schema's
// constraints: the allowed properties (each of these definitions has
// "additionalProperties": false), the required ones, property types, enums
// and minimums. validate walks a document against it.
type prop struct {
	typ  string // string, integer, boolean, object, array, map (object of strings), any
	ref  string // definition of an object or of array items
	enum []string
	min  *int
	uniq bool
}

type def struct {
	props    map[string]prop
	required []string
	anyOf    [][]string // at least one of these sets of properties
	open     bool       // additionalProperties allowed (propertyBag)
}

func minv(n int) *int { return &n }

var levels = []string{"none", "note", "warning", "error"}

var sarifSchema = map[string]def{
	"root": {props: map[string]prop{
		"$schema": {typ: "string"}, "version": {typ: "string", enum: []string{"2.1.0"}},
		"runs": {typ: "array", ref: "run"}, "inlineExternalProperties": {typ: "array"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"version", "runs"}},
	"run": {props: map[string]prop{
		"tool": {typ: "object", ref: "tool"}, "results": {typ: "array", ref: "result"}, "invocations": {typ: "array"},
		"conversion": {typ: "object"}, "language": {typ: "string"}, "versionControlProvenance": {typ: "array"},
		"originalUriBaseIds": {typ: "object"}, "artifacts": {typ: "array"}, "logicalLocations": {typ: "array"},
		"graphs": {typ: "array"}, "automationDetails": {typ: "object"}, "runAggregates": {typ: "array"},
		"baselineGuid": {typ: "string"}, "redactionTokens": {typ: "array"}, "defaultEncoding": {typ: "string"},
		"defaultSourceLanguage": {typ: "string"}, "newlineSequences": {typ: "array"}, "columnKind": {typ: "string", enum: []string{"utf16CodeUnits", "unicodeCodePoints"}},
		"externalPropertyFileReferences": {typ: "object"}, "threadFlowLocations": {typ: "array"}, "taxonomies": {typ: "array"},
		"addresses": {typ: "array"}, "translations": {typ: "array"}, "policies": {typ: "array"}, "webRequests": {typ: "array"},
		"webResponses": {typ: "array"}, "specialLocations": {typ: "object"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"tool"}},
	"tool": {props: map[string]prop{
		"driver": {typ: "object", ref: "toolComponent"}, "extensions": {typ: "array"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"driver"}},
	"toolComponent": {props: map[string]prop{
		"guid": {typ: "string"}, "name": {typ: "string"}, "organization": {typ: "string"}, "product": {typ: "string"},
		"productSuite": {typ: "string"}, "shortDescription": {typ: "object", ref: "multiformatMessageString"},
		"fullDescription": {typ: "object", ref: "multiformatMessageString"}, "fullName": {typ: "string"},
		"version": {typ: "string"}, "semanticVersion": {typ: "string"}, "dottedQuadFileVersion": {typ: "string"},
		"releaseDateUtc": {typ: "string"}, "downloadUri": {typ: "string"}, "informationUri": {typ: "string"},
		"globalMessageStrings": {typ: "object"}, "notifications": {typ: "array"}, "rules": {typ: "array", ref: "reportingDescriptor", uniq: true},
		"taxa": {typ: "array"}, "locations": {typ: "array"}, "language": {typ: "string"}, "contents": {typ: "array"},
		"isComprehensive": {typ: "boolean"}, "localizedDataSemanticVersion": {typ: "string"},
		"minimumRequiredLocalizedDataSemanticVersion": {typ: "string"}, "associatedComponent": {typ: "object"},
		"translationMetadata": {typ: "object"}, "supportedTaxonomies": {typ: "array"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"name"}},
	"reportingDescriptor": {props: map[string]prop{
		"id": {typ: "string"}, "deprecatedIds": {typ: "array"}, "guid": {typ: "string"}, "deprecatedGuids": {typ: "array"},
		"name": {typ: "string"}, "deprecatedNames": {typ: "array"}, "shortDescription": {typ: "object", ref: "multiformatMessageString"},
		"fullDescription": {typ: "object", ref: "multiformatMessageString"}, "messageStrings": {typ: "object"},
		"defaultConfiguration": {typ: "object", ref: "reportingConfiguration"}, "helpUri": {typ: "string"},
		"help": {typ: "object", ref: "multiformatMessageString"}, "relationships": {typ: "array"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"id"}},
	"multiformatMessageString": {props: map[string]prop{
		"text": {typ: "string"}, "markdown": {typ: "string"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"text"}},
	"reportingConfiguration": {props: map[string]prop{
		"enabled": {typ: "boolean"}, "level": {typ: "string", enum: levels}, "rank": {typ: "number"},
		"parameters": {typ: "object", ref: "propertyBag"}, "properties": {typ: "object", ref: "propertyBag"},
	}},
	"result": {props: map[string]prop{
		"ruleId": {typ: "string"}, "ruleIndex": {typ: "integer", min: minv(-1)}, "rule": {typ: "object"},
		"kind":  {typ: "string", enum: []string{"notApplicable", "pass", "fail", "review", "open", "informational"}},
		"level": {typ: "string", enum: levels}, "message": {typ: "object", ref: "message"},
		"analysisTarget": {typ: "object"}, "locations": {typ: "array", ref: "location"}, "guid": {typ: "string"},
		"correlationGuid": {typ: "string"}, "occurrenceCount": {typ: "integer", min: minv(1)},
		"partialFingerprints": {typ: "map"}, "fingerprints": {typ: "map"}, "stacks": {typ: "array"}, "codeFlows": {typ: "array"},
		"graphs": {typ: "array"}, "graphTraversals": {typ: "array"}, "relatedLocations": {typ: "array", ref: "location"},
		"suppressions": {typ: "array", ref: "suppression", uniq: true}, "baselineState": {typ: "string", enum: []string{"new", "unchanged", "updated", "absent"}},
		"rank": {typ: "number"}, "attachments": {typ: "array"}, "hostedViewerUri": {typ: "string"}, "workItemUris": {typ: "array"},
		"provenance": {typ: "object"}, "fixes": {typ: "array"}, "taxa": {typ: "array"}, "webRequest": {typ: "object"},
		"webResponse": {typ: "object"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"message"}},
	"message": {props: map[string]prop{
		"text": {typ: "string"}, "markdown": {typ: "string"}, "id": {typ: "string"}, "arguments": {typ: "array"},
		"properties": {typ: "object", ref: "propertyBag"},
	}, anyOf: [][]string{{"text"}, {"id"}}},
	"location": {props: map[string]prop{
		"id": {typ: "integer", min: minv(-1)}, "physicalLocation": {typ: "object", ref: "physicalLocation"},
		"logicalLocations": {typ: "array", ref: "logicalLocation", uniq: true}, "message": {typ: "object", ref: "message"},
		"annotations": {typ: "array"}, "relationships": {typ: "array"}, "properties": {typ: "object", ref: "propertyBag"},
	}},
	"physicalLocation": {props: map[string]prop{
		"address": {typ: "object"}, "artifactLocation": {typ: "object", ref: "artifactLocation"},
		"region": {typ: "object", ref: "region"}, "contextRegion": {typ: "object", ref: "region"}, "properties": {typ: "object", ref: "propertyBag"},
	}, anyOf: [][]string{{"address"}, {"artifactLocation"}}},
	"artifactLocation": {props: map[string]prop{
		"uri": {typ: "string"}, "uriBaseId": {typ: "string"}, "index": {typ: "integer", min: minv(-1)},
		"description": {typ: "object", ref: "message"}, "properties": {typ: "object", ref: "propertyBag"},
	}},
	"region": {props: map[string]prop{
		"startLine": {typ: "integer", min: minv(1)}, "startColumn": {typ: "integer", min: minv(1)},
		"endLine": {typ: "integer", min: minv(1)}, "endColumn": {typ: "integer", min: minv(1)},
		"charOffset": {typ: "integer", min: minv(-1)}, "charLength": {typ: "integer", min: minv(0)},
		"byteOffset": {typ: "integer", min: minv(-1)}, "byteLength": {typ: "integer", min: minv(0)},
		"snippet": {typ: "object"}, "message": {typ: "object", ref: "message"}, "sourceLanguage": {typ: "string"},
		"properties": {typ: "object", ref: "propertyBag"},
	}},
	"logicalLocation": {props: map[string]prop{
		"name": {typ: "string"}, "index": {typ: "integer", min: minv(-1)}, "fullyQualifiedName": {typ: "string"},
		"decoratedName": {typ: "string"}, "parentIndex": {typ: "integer", min: minv(-1)}, "kind": {typ: "string"},
		"properties": {typ: "object", ref: "propertyBag"},
	}},
	"suppression": {props: map[string]prop{
		"guid": {typ: "string"}, "kind": {typ: "string", enum: []string{"inSource", "external"}},
		"status": {typ: "string", enum: []string{"accepted", "underReview", "rejected"}}, "justification": {typ: "string"},
		"location": {typ: "object", ref: "location"}, "properties": {typ: "object", ref: "propertyBag"},
	}, required: []string{"kind"}},
	"propertyBag": {props: map[string]prop{"tags": {typ: "array", uniq: true}}, open: true},
}

func validate(v any, defName, path string) []string {
	d := sarifSchema[defName]
	obj, ok := v.(map[string]any)
	if !ok {
		return []string{path + ": want an object"}
	}
	var errs []string
	for _, r := range d.required {
		if _, ok := obj[r]; !ok {
			errs = append(errs, fmt.Sprintf("%s: missing required %q", path, r))
		}
	}
	if len(d.anyOf) > 0 {
		found := false
		for _, set := range d.anyOf {
			all := true
			for _, k := range set {
				if _, ok := obj[k]; !ok {
					all = false
				}
			}
			found = found || all
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: needs one of %v", path, d.anyOf))
		}
	}
	for k, val := range obj {
		p, ok := d.props[k]
		if !ok {
			if !d.open {
				errs = append(errs, fmt.Sprintf("%s: property %q not allowed", path, k))
			}
			continue
		}
		errs = append(errs, checkProp(p, val, path+"."+k)...)
	}
	return errs
}

func checkProp(p prop, val any, path string) []string {
	var errs []string
	switch p.typ {
	case "string":
		s, ok := val.(string)
		if !ok {
			return []string{path + ": want a string"}
		}
		if len(p.enum) > 0 {
			in := false
			for _, e := range p.enum {
				in = in || e == s
			}
			if !in {
				errs = append(errs, fmt.Sprintf("%s: %q not in %v", path, s, p.enum))
			}
		}
	case "integer", "number":
		n, ok := val.(float64)
		if !ok || (p.typ == "integer" && n != float64(int64(n))) {
			return []string{path + ": want an " + p.typ}
		}
		if p.min != nil && n < float64(*p.min) {
			errs = append(errs, fmt.Sprintf("%s: %v below minimum %d", path, n, *p.min))
		}
	case "boolean":
		if _, ok := val.(bool); !ok {
			errs = append(errs, path+": want a boolean")
		}
	case "map":
		m, ok := val.(map[string]any)
		if !ok {
			return []string{path + ": want an object"}
		}
		for k, e := range m {
			if _, ok := e.(string); !ok {
				errs = append(errs, fmt.Sprintf("%s.%s: want a string", path, k))
			}
		}
	case "object":
		if _, ok := val.(map[string]any); !ok {
			return []string{path + ": want an object"}
		}
		if p.ref != "" {
			errs = append(errs, validate(val, p.ref, path)...)
		}
	case "array":
		arr, ok := val.([]any)
		if !ok {
			return []string{path + ": want an array"}
		}
		seen := map[string]bool{}
		for i, e := range arr {
			if p.uniq {
				b, _ := json.Marshal(e)
				if seen[string(b)] {
					errs = append(errs, fmt.Sprintf("%s[%d]: duplicate item in a uniqueItems array", path, i))
				}
				seen[string(b)] = true
			}
			if p.ref != "" {
				errs = append(errs, validate(e, p.ref, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return errs
}

func TestSARIFValidates(t *testing.T) {
	res := exampleResult(t)
	var b bytes.Buffer
	if err := report.SARIF(&b, res, rules.All(), "test"); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if errs := validate(doc, "root", "$"); len(errs) > 0 {
		t.Fatalf("SARIF does not validate:\n%s", strings.Join(errs, "\n"))
	}
	run := doc["runs"].([]any)[0].(map[string]any)
	ruleList := run["tool"].(map[string]any)["driver"].(map[string]any)["rules"].([]any)
	results := run["results"].([]any)
	if len(results) != len(res.Findings)+len(res.Suppressed) {
		t.Errorf("%d results, want %d", len(results), len(res.Findings)+len(res.Suppressed))
	}
	for _, r := range results {
		rm := r.(map[string]any)
		idx := int(rm["ruleIndex"].(float64))
		if got := ruleList[idx].(map[string]any)["id"]; got != rm["ruleId"] {
			t.Errorf("ruleIndex %d names %v, result says %v", idx, got, rm["ruleId"])
		}
		loc := rm["locations"].([]any)[0].(map[string]any)
		if _, ok := loc["physicalLocation"]; !ok {
			t.Errorf("result %v has no file location", rm["ruleId"])
		}
	}
}

// TestSARIFValidatorRejects proves the validator catches what the schema
// forbids.
func TestSARIFValidatorRejects(t *testing.T) {
	bad := []string{
		`{"runs": []}`,
		`{"version": "2.0.0", "runs": []}`,
		`{"version": "2.1.0", "runs": [{}]}`,
		`{"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}`,
		`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "fatal"}]}]}`,
		`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "locations": [{"physicalLocation": {"region": {"startLine": 0}}}]}]}]}`,
		`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {}}]}]}`,
		`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x", "colour": "red"}}}]}`,
	}
	for _, s := range bad {
		var doc map[string]any
		if err := json.Unmarshal([]byte(s), &doc); err != nil {
			t.Fatal(err)
		}
		if errs := validate(doc, "root", "$"); len(errs) == 0 {
			t.Errorf("validator accepted %s", s)
		}
	}
}
