package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"meshward.dev/meshward/internal/proxy"
)

// TestTapStreamsGRPCStatus: /tap carries a gRPC call's grpc-status, the
// outcome its HTTP status 200 hides, and leaves the field out for
// requests that are not gRPC.
func TestTapStreamsGRPCStatus(t *testing.T) {
	hub := newTapHub()
	srv := httptest.NewServer(hub)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/tap", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for !hub.active() {
		if ctx.Err() != nil {
			t.Fatal("tap client never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	hub.publish(&proxy.Event{Direction: "inbound", Protocol: "grpc", Path: "/items.Items/Get", Status: 200, GRPCStatus: "5", Decision: "allow"})
	hub.publish(&proxy.Event{Direction: "inbound", Protocol: "http1", Path: "/products", Status: 200, Decision: "allow"})

	sc := bufio.NewScanner(resp.Body)
	for _, want := range []struct {
		path       string
		grpcStatus any // nil: absent
	}{
		{"/items.Items/Get", "5"},
		{"/products", nil},
	} {
		if !sc.Scan() {
			t.Fatalf("tap stream ended: %v", sc.Err())
		}
		var got map[string]any
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got["path"] != want.path || got["grpc_status"] != want.grpcStatus {
			t.Errorf("tap line %s: want path %s, grpc_status %v", sc.Bytes(), want.path, want.grpcStatus)
		}
	}
}
