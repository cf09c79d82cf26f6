// Package cri is a client of the two calls of the Container Runtime Interface
// (runtime.v1.RuntimeService, k8s.io/cri-api) that knode makes: list a pod's
// running containers and stop one, on the runtime's unix socket, the API the
// kubelet itself uses.
//
// It speaks gRPC's wire protocol itself (HTTP/2 without TLS, length-prefixed
// protobuf messages, the status in trailers) with the standard library's
// HTTP/2 client and encodes the few message fields it uses with protowire:
// grpc-go and the CRI's generated code cost 4.2 MB of knode's binary for these
// two calls. The tests run it against grpc-go serving the CRI's own generated
// service (k8s.io/cri-api), so the wire format is the real one.
package cri

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
)

// Client calls the CRI runtime service on one unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client of the CRI service on the unix socket path; it
// connects on the first call.
func New(socket string) *Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true) // gRPC: HTTP/2 with prior knowledge
	tr := &http.Transport{
		Protocols: &protocols,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Close ends the client's connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Error is a gRPC status other than OK that the runtime answered with.
type Error struct {
	Code    int // google.golang.org/grpc/codes
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("rpc error: code %d: %s", e.Code, e.Message) }

// maxMessage bounds a response read into memory (grpc-go's default limit is
// 4 MiB; a node's container list with labels and annotations stays far below).
const maxMessage = 16 << 20

// call sends one unary gRPC request to method of runtime.v1.RuntimeService
// and returns the response message.
func (c *Client) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	frame := make([]byte, 5, 5+len(req)) // uncompressed flag, then the length
	binary.BigEndian.PutUint32(frame[1:], uint32(len(req)))
	frame = append(frame, req...)
	u := "http://localhost/runtime.v1.RuntimeService/" + method
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(frame))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/grpc")
	hreq.Header.Set("TE", "trailers")
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("CRI %s at %s: %w", method, c.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 5+maxMessage+1))
	if err != nil {
		return nil, fmt.Errorf("CRI %s at %s: read the answer: %w", method, c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CRI %s at %s: HTTP %s", method, c.socket, resp.Status)
	}
	if err := grpcStatus(resp); err != nil {
		return nil, fmt.Errorf("CRI %s at %s: %w", method, c.socket, err)
	}
	if len(body) < 5 || body[0] != 0 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
		return nil, fmt.Errorf("CRI %s at %s: not one uncompressed gRPC message of at most %d bytes (%d bytes)", method, c.socket, maxMessage, len(body))
	}
	return body[5:], nil
}

// grpcStatus reads the gRPC status from the trailers (or, in a trailers-only
// answer, the headers).
func grpcStatus(resp *http.Response) error {
	code, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if code == "" {
		code, msg = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		return fmt.Errorf("no gRPC status in the answer (%q)", code)
	}
	if n == 0 {
		return nil
	}
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	return &Error{Code: n, Message: msg}
}
