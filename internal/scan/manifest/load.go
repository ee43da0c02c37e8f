package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

// MaxFileSize bounds one input file; larger files are an input error.
const MaxFileSize = 64 << 20

// Stdin is the path that names standard input.
const Stdin = "-"

// extensions a directory walk picks up.
var extensions = map[string]bool{".yaml": true, ".yml": true, ".json": true, ".hcl": true}

// Files expands paths (files and directories, walked recursively, hidden
// directories skipped) into the list of files to decode, sorted per
// directory. Files named explicitly are kept whatever their extension.
func Files(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == Stdin {
			out = append(out, p)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, &Error{File: p, Err: errors.Unwrap(err)}
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if extensions[strings.ToLower(filepath.Ext(path))] {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", p, err)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// Skip reasons: why a file gave the scanner nothing to read.
const (
	SkipNotRead  = "not Kubernetes objects of a kind the scanner reads"
	SkipTemplate = "unrendered template (render it first: helm template ... | meshward scan -)"
)

// FileResult is what one file holds for the scanner: its objects, how many
// documents were skipped as not of a kind it reads (and why), and the
// malformed documents of kinds it does read. Neither stops a scan.
type FileResult struct {
	Objects    []*scan.Object
	Skipped    int
	SkipReason string
	Problems   []*Error
}

// LoadFile reads and decodes one file ("-" is stdin). Its error is only
// for a file that cannot be read; what is in the file is in the result.
func LoadFile(name string, stdin io.Reader) (*FileResult, error) {
	data, err := readFile(name, stdin)
	if err != nil {
		return nil, err
	}
	return DecodeFile(name, data), nil
}

// Load decodes every file under paths; "-" reads stdin. It stops at the
// first file that cannot be read or holds a malformed document (the
// strict form, for callers that read files they wrote).
func Load(paths []string, stdin io.Reader) ([]*scan.Object, error) {
	files, err := Files(paths)
	if err != nil {
		return nil, err
	}
	var objs []*scan.Object
	for _, f := range files {
		res, err := LoadFile(f, stdin)
		if err != nil {
			return nil, err
		}
		if len(res.Problems) > 0 {
			return nil, res.Problems[0]
		}
		objs = append(objs, res.Objects...)
	}
	return objs, nil
}

func readFile(name string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	if name == Stdin {
		if stdin == nil {
			return nil, &Error{File: name, Err: errors.New("no standard input")}
		}
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, &Error{File: name, Err: errors.Unwrap(err)}
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: name, Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Err: fmt.Errorf("larger than %d bytes", MaxFileSize)}
	}
	return data, nil
}

// Decode decodes one file's content, strictly: the first malformed
// document is the error.
func Decode(name string, data []byte) ([]*scan.Object, error) {
	res := DecodeFile(name, data)
	if len(res.Problems) > 0 {
		return nil, res.Problems[0]
	}
	return res.Objects, nil
}

// DecodeFile decodes one file's content. The format is chosen by extension
// (.hcl is HCL) and by content (YAML covers JSON).
func DecodeFile(name string, data []byte) *FileResult {
	if strings.EqualFold(filepath.Ext(name), ".hcl") {
		return decodeHCL(name, data)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return &FileResult{}
	}
	if !bytes.HasPrefix(trimmed, []byte("{")) && !bytes.HasPrefix(trimmed, []byte("[")) && !looksYAML(trimmed) && looksHCL(trimmed) {
		return decodeHCL(name, data)
	}
	return decodeYAML(name, data)
}

// looksYAML and looksHCL tell stdin HCL ("acl { ... }", "key = value") from
// YAML without an extension to go by.
func looksYAML(b []byte) bool {
	first := string(bytes.SplitN(b, []byte("\n"), 2)[0])
	return strings.HasPrefix(first, "---") || strings.HasPrefix(first, "apiVersion:") || strings.HasPrefix(first, "kind:")
}

func looksHCL(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "//") {
			continue
		}
		return strings.Contains(l, " = ") || strings.HasSuffix(l, "{") && !strings.Contains(l, ":")
	}
	return false
}
