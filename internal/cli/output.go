package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Output formats. Every command whose output is data prints text, json or
// yaml (some add their own, such as sarif); the convention for json and
// yaml is in docs/output.md:
//
//   - keys are snake_case, the same in json and yaml (yaml is the json
//     document of the same view);
//   - times are RFC 3339 strings in UTC (null when unset), under the key
//     the field has, with no unit suffix;
//   - counters, revisions, ports and sizes are numbers;
//   - durations are Go duration strings ("1.5ms", "24h0m0s");
//   - streams (audit, tap) print one json object per line, or one yaml
//     document per record, each starting with "---".
//
// Proto messages are never printed as they are (protojson writes int64 as
// strings and epochs as numbers): a command turns them into a view struct
// first (views.go).
const (
	formatText = "text"
	formatJSON = "json"
	formatYAML = "yaml"
)

// outputFormats lists the formats a command accepts: text, json and yaml,
// then extra.
func outputFormats(extra ...string) []string {
	all := []string{formatText, formatJSON, formatYAML}
	for _, e := range extra {
		if !contains(all, e) {
			all = append(all, e)
		}
	}
	return all
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// addOutputFlag registers -o/--output (default text) on c for the formats
// of outputFormats(extra...).
func addOutputFlag(c *cobra.Command, p *string, extra ...string) {
	c.Flags().StringVarP(p, "output", "o", formatText, "output format: "+joinOr(outputFormats(extra...)))
}

// joinOr is "a, b or c".
func joinOr(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}

// checkOutput is the one place that decides an -o value: text, json and
// yaml are always accepted, and extra ones a command adds (sarif,
// markdown). Anything else is a usage error (exit 2) naming what is
// accepted.
func checkOutput(got string, extra ...string) error {
	all := outputFormats(extra...)
	if contains(all, got) {
		return nil
	}
	return usageErrf("-o must be one of %s, got %q", strings.Join(all, ", "), got)
}

// errProtoOutput is returned for a proto message passed to a writer: it
// needs a view (views.go) so its int64 epochs become times.
var errProtoOutput = errors.New("internal error: proto message printed without a view")

// writeOutput prints v as indented json or as yaml with the same keys. The
// text format is each command's own: writeOutput refuses it.
func writeOutput(w io.Writer, format string, v any) error {
	if _, ok := v.(proto.Message); ok {
		return errProtoOutput
	}
	switch format {
	case formatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case formatYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("internal error: writeOutput called for -o %s", format)
}

// writeRecord prints one record of a stream: a json object on one line, or
// a yaml document starting with "---".
func writeRecord(w io.Writer, format string, v any) error {
	if _, ok := v.(proto.Message); ok {
		return errProtoOutput
	}
	switch format {
	case formatJSON:
		return json.NewEncoder(w).Encode(v)
	case formatYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(append([]byte("---\n"), b...))
		return err
	}
	return fmt.Errorf("internal error: writeRecord called for -o %s", format)
}

// writeJSON prints v as indented json (writeOutput with -o json).
func writeJSON(w io.Writer, v any) error { return writeOutput(w, formatJSON, v) }

// writeJSONLine prints v as one line of json (writeRecord with -o json).
func writeJSONLine(w io.Writer, v any) error { return writeRecord(w, formatJSON, v) }

// writeJSONAs prints a document a component wrote as json (a scan report,
// the rule catalogue) in format: as it is for json, converted key for key
// for yaml.
func writeJSONAs(w io.Writer, format string, writeJSON func(io.Writer) error) error {
	if format == formatJSON {
		return writeJSON(w)
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf); err != nil {
		return err
	}
	return writeOutput(w, format, json.RawMessage(bytes.TrimSpace(buf.Bytes())))
}

// unixTime is an epoch in seconds as a UTC time, nil when unset (0).
func unixTime(sec int64) *time.Time {
	if sec == 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}

// unixNanoTime is an epoch in nanoseconds as a UTC time, nil when unset.
func unixNanoTime(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

// utcTime is t in UTC, nil when zero.
func utcTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// orEmpty keeps a nil slice from printing as null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
