package policywire

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/policy"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []policy.File
		want []policy.File
	}{
		{name: "nil", in: nil, want: nil},
		{name: "empty is nil", in: []policy.File{}, want: nil},
		{name: "files in order", in: []policy.File{{Name: "b.yaml", Data: []byte("b")}, {Name: "a.yaml", Data: []byte("a")}},
			want: []policy.File{{Name: "b.yaml", Data: []byte("b")}, {Name: "a.yaml", Data: []byte("a")}}},
		{name: "empty content", in: []policy.File{{Name: "e.yaml"}}, want: []policy.File{{Name: "e.yaml"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Files(Proto(tc.in))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Files(Proto(in)) (-want +got):\n%s", diff)
			}
		})
	}
}
