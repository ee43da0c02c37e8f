package proxy

import "net/http"

// A gRPC call that fails still ends in HTTP/2 status 200: its outcome is
// the grpc-status field of the response's trailers, or of its headers in a
// trailers-only response (an error before any message). Like Linkerd,
// meshward counts a gRPC response whose grpc-status is not 0 as a failure.
// The trailers come after the body, so grpc-status is read once the body
// has been copied, from the writer's header map, where both
// httputil.ReverseProxy and the HTTP/1.1 forwarder leave them.
//
// What observers see is one of a fixed set of values, never the bytes a
// peer sent: "0" to "16" (the codes), grpcStatusOther for anything else,
// grpcStatusNone for a gRPC request whose response had no grpc-status
// (meshward's own 502 or 504, an answer that is not gRPC). That keeps the
// metric label bounded and the tap event and log line printable.
const (
	grpcStatusOther = "other"
	grpcStatusNone  = "none"
)

var grpcStatusNames = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"}

// Keys of h that hold grpc-status: as a trailer the writer announces with
// the prefix (ReverseProxy and the forwarder copy undeclared trailers so),
// and as a header (a trailers-only response, or a declared trailer, which
// ReverseProxy appends after the header's values).
const (
	grpcStatusKey        = "Grpc-Status"
	grpcStatusTrailerKey = http.TrailerPrefix + grpcStatusKey
)

// grpcStatus is the grpc-status of a response, read from the header map h
// of the writer it went to, after its body: the trailer when there is one,
// else the last value of the header.
func grpcStatus(h http.Header) string {
	vv := h[grpcStatusTrailerKey]
	if len(vv) == 0 {
		vv = h[grpcStatusKey]
	}
	if len(vv) == 0 {
		return grpcStatusNone
	}
	return grpcStatusName(vv[len(vv)-1])
}

// grpcStatusName maps a grpc-status value (1*DIGIT, in the gRPC over
// HTTP/2 spec; leading zeros allowed, as gRPC clients parse it) to its
// name in grpcStatusNames, or grpcStatusOther.
func grpcStatusName(v string) string {
	if v == "" {
		return grpcStatusOther
	}
	n := 0
	for i := range len(v) {
		c := v[i]
		if c < '0' || c > '9' {
			return grpcStatusOther
		}
		if n = n*10 + int(c-'0'); n >= len(grpcStatusNames) {
			return grpcStatusOther
		}
	}
	return grpcStatusNames[n]
}

// grpcFailed reports whether a grpc-status name is a failure: anything but
// 0. "" (not gRPC) is not.
func grpcFailed(name string) bool {
	return name != "" && name != grpcStatusNames[0]
}
