package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"meshward.dev/meshward/internal/scan/manifest"
)

// FuzzImport: whatever the manifests hold, Import either finds nothing to
// import or returns files that compile and whose generated tests pass
// (Import checks both and reports a failure as an error).
func FuzzImport(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/TestImport/*/*.yaml")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := manifest.Decode("fuzz.yaml", data)
		if err != nil {
			return
		}
		if _, err := Import(objs, Options{}); err != nil && !errors.Is(err, ErrNothing) {
			t.Fatal(err)
		}
	})
}
