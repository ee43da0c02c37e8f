// Package meshwardv1 holds the control plane's gRPC API: the .proto and the
// code protoc generates from it. Nothing else belongs here.
package meshwardv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative control.proto
