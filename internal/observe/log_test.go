package observe

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLoggerEscapesInvalidUTF8: a caller's invalid bytes are logged as
// \xHH (not U+FFFD, which loses what was sent), in both formats, in
// string and error attributes and in attributes added with With; valid
// strings are logged as they are.
func TestLoggerEscapesInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := NewLogger(&buf, format, "info")
			if err != nil {
				t.Fatal(err)
			}
			log.With(KeyMethod, "G\xe9T").Info("request denied", KeyPath, "/\xff", KeyError, errors.New("bad \xfe"), KeyRule, "caf\u00e9")
			out := buf.String()
			if !utf8.ValidString(out) {
				t.Fatalf("log line is not valid UTF-8: %q", out)
			}
			if strings.ContainsRune(out, utf8.RuneError) {
				t.Errorf("log line holds U+FFFD (the bytes sent are lost): %s", out)
			}
			if format == "json" {
				var m map[string]string
				if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
					t.Fatal(err)
				}
				for k, want := range map[string]string{KeyMethod: `G\xe9T`, KeyPath: `/\xff`, KeyError: `bad \xfe`, KeyRule: "caf\u00e9"} {
					if m[k] != want {
						t.Errorf("%s = %q, want %q", k, m[k], want)
					}
				}
				return
			}
			for _, want := range []string{`method=G\xe9T`, `path=/\xff`, `err="bad \\xfe"`, "rule=caf\u00e9"} {
				if !strings.Contains(out, want) {
					t.Errorf("no %s in %s", want, out)
				}
			}
		})
	}
}
