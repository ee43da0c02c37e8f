// Package examples ships the example meshes inside the meshward binary, so
// `meshward up --demo` needs nothing but the binary.
package examples

import "embed"

// Demo is the demo shop: demo/mesh.yaml and demo/policies.
//
//go:embed demo
var Demo embed.FS
