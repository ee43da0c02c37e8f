package bolt

import (
	"testing"

	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceSealed runs the suite with the CA blob sealed at rest.
func TestConformanceSealed(t *testing.T) {
	sealer, err := store.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), sealer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
