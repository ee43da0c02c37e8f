// Package localmesh is the `meshward up` supervisor: given a mesh.yaml and a
// running control plane, it mints a join token per service, starts one
// sidecar process per service and then the app, streams their output with a
// prefix per component, restarts what crashes (with backoff; a sidecar
// restarts on the same ports, so its app is not disturbed), and stops
// everything in reverse order. It does not run the control plane itself;
// the caller does, and hands it an admin client.
package localmesh
