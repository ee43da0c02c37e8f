// Package meshward holds the scanner's rules for meshward's own mesh.yaml,
// MeshConfig and AccessPolicy documents. It decodes only the few fields the
// rules need; internal/config and internal/policy own the full formats.
package meshward
