package policywire

import (
	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/policy"
)

// Files returns the wire files as policy files, in the same order. No
// files is nil (the control plane stores it as null).
func Files(in []*apiv1.PolicyFile) []policy.File {
	if len(in) == 0 {
		return nil
	}
	out := make([]policy.File, len(in))
	for i, f := range in {
		out[i] = policy.File{Name: f.GetName(), Data: f.GetContent()}
	}
	return out
}

// Proto returns the policy files as wire files, in the same order. No
// files is nil.
func Proto(in []policy.File) []*apiv1.PolicyFile {
	if len(in) == 0 {
		return nil
	}
	out := make([]*apiv1.PolicyFile, len(in))
	for i, f := range in {
		out[i] = &apiv1.PolicyFile{Name: f.Name, Content: f.Data}
	}
	return out
}
