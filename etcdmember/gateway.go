package etcdmember

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// etcd serves its gRPC API also as JSON over HTTP on its client URLs (the
// gRPC gateway, on by default: --enable-grpc-gateway): POST /v3/<service>/<call>
// with the request message as JSON, the response message as JSON back, field
// names as in rpc.proto and 64-bit integers as strings (protojson). knode
// uses it instead of go.etcd.io/etcd/client/v3, whose client, zap and
// generated protobuf code cost 3.9 MB of knode's binary for the five calls
// below (measured: 81.6 -> 77.7 MB). The tests run these calls against the
// real etcd of the payload's version (etcd_test.go).
//
// Gateway paths of the calls knode makes.
const (
	pathMemberList   = "/v3/cluster/member/list"
	pathMemberAdd    = "/v3/cluster/member/add"
	pathMemberRemove = "/v3/cluster/member/remove"
	pathStatus       = "/v3/maintenance/status"
	pathSnapshot     = "/v3/maintenance/snapshot"
)

// Error is an error etcd answered with: the gRPC status code and message of
// its error (the same message etcd's own client matches its typed errors on).
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("etcd: %s (code %d)", e.Message, e.Code) }

// The errors knode acts on, as etcd names them (api/v3/v3rpc/rpctypes).
var (
	// ErrUnhealthy: a membership change refused while the leader has known
	// the remaining members active for less than 5 s.
	ErrUnhealthy = &Error{Code: codeUnavailable, Message: "etcdserver: unhealthy cluster"}
	// ErrPeerURLExist: a member with that peer URL is there already.
	ErrPeerURLExist = &Error{Code: codeFailedPrecondition, Message: "etcdserver: Peer URLs already exists"}
	// ErrMemberExist: a member with that ID is there already.
	ErrMemberExist = &Error{Code: codeFailedPrecondition, Message: "etcdserver: member ID already exist"}
)

// gRPC status codes (google.golang.org/grpc/codes) that matter here.
const (
	codeFailedPrecondition = 9
	codeUnavailable        = 14
)

// Is makes errors.Is match an etcd error by code and message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == e.Message
}

// maxResponse bounds a unary response read into memory (a member list of a
// few members is a few hundred bytes).
const maxResponse = 1 << 20

// post sends req as JSON to path on endpoint and decodes the answer into
// resp; an error status becomes *Error.
func (c *Client) post(ctx context.Context, endpoint, path string, req, resp any) error {
	body, err := c.open(ctx, endpoint, path, req)
	if err != nil {
		return err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("read %s%s: %w", endpoint, path, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("%s%s: answer larger than %d bytes", endpoint, path, maxResponse)
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("decode answer of %s%s: %w", endpoint, path, err)
	}
	return nil
}

// open sends req and returns the body of a 200 answer; the caller closes it.
func (c *Client) open(ctx context.Context, endpoint, path string, req any) (io.ReadCloser, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	url := strings.TrimSuffix(endpoint, "/") + path
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("etcd request %s: %w", url, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, err
	}
	if hresp.StatusCode == http.StatusOK {
		return hresp.Body, nil
	}
	defer hresp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(hresp.Body, maxResponse))
	var e Error
	if json.Unmarshal(raw, &e) != nil || e.Message == "" {
		return nil, fmt.Errorf("etcd %s: HTTP %s", url, hresp.Status)
	}
	return nil, &e
}

// postAny tries the endpoints in order until one answers: a member that is
// down (no connection, or etcd's Unavailable other than a refused
// membership change) passes the call to the next, as etcd's client balances.
func (c *Client) postAny(ctx context.Context, path string, req, resp any) error {
	var errs []error
	for _, ep := range c.endpoints {
		err := c.post(ctx, ep, path, req, resp)
		var etcdErr *Error
		switch {
		case err == nil:
			return nil
		case errors.As(err, &etcdErr) && (etcdErr.Code != codeUnavailable || errors.Is(err, ErrUnhealthy)):
			return err // the cluster's answer, the same through any member
		case ctx.Err() != nil:
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return errors.Join(errs...)
}

// The messages of rpc.proto that knode sends and reads; uint64 fields travel
// as JSON strings.
type (
	memberJSON struct {
		ID         uint64   `json:"ID,string"`
		Name       string   `json:"name"`
		PeerURLs   []string `json:"peerURLs"`
		ClientURLs []string `json:"clientURLs"`
		IsLearner  bool     `json:"isLearner"`
	}
	memberListRequest struct {
		Linearizable bool `json:"linearizable"`
	}
	memberListResponse struct {
		Members []memberJSON `json:"members"`
	}
	memberAddRequest struct {
		PeerURLs []string `json:"peerURLs"`
	}
	memberRemoveRequest struct {
		ID uint64 `json:"ID,string"`
	}
	statusResponse struct {
		Version string `json:"version"`
	}
	// snapshotMessage is one message of the snapshot stream, which the
	// gateway sends as {"result": SnapshotResponse} or {"error": status}.
	snapshotMessage struct {
		Result *struct {
			Blob []byte `json:"blob"` // base64 in JSON
		} `json:"result"`
		Error *Error `json:"error"`
	}
)
