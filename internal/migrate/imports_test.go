package migrate

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportDirection keeps the graph one way: migrate reads scan and
// policy; neither of them (nor anything under them) imports migrate.
func TestImportDirection(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"../policy", "../scan"} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, im := range f.Imports {
				if path, _ := strconv.Unquote(im.Path.Value); strings.HasPrefix(path, "meshward.dev/meshward/internal/migrate") {
					t.Errorf("%s imports %s: migrate sits above scan and policy", p, path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
