package cli

import (
	"testing"

	"meshward.dev/meshward/internal/proxy"
)

func TestTapStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   proxy.Event
		want string
	}{
		{"http", proxy.Event{Protocol: "http1", Status: 403}, "403"},
		{"grpc ok", proxy.Event{Protocol: "grpc", Status: 200, GRPCStatus: "0"}, "200/0"},
		{"grpc not found", proxy.Event{Protocol: "grpc", Status: 200, GRPCStatus: "5"}, "200/5"},
		{"grpc without status", proxy.Event{Protocol: "grpc", Status: 502, GRPCStatus: "none"}, "502/none"},
		{"tcp", proxy.Event{Protocol: "tcp"}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tapStatus(&tc.in); got != tc.want {
				t.Errorf("tapStatus = %q, want %q", got, tc.want)
			}
		})
	}
}
