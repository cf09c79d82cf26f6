package etcdmember

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// gatewayClient is a Client of the given handlers, without TLS, as etcd's
// gateway answers (the real gateway is tested against etcd in etcd_test.go).
func gatewayClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Client{endpoints: []string{srv.URL}, http: srv.Client(), timeout: 5e9}
}

func TestGatewayErrors(t *testing.T) {
	cli := gatewayClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"code":14,"message":"etcdserver: unhealthy cluster","details":[]}`)
	})
	err := cli.postAny(context.Background(), pathMemberRemove, memberRemoveRequest{ID: 1}, &struct{}{})
	if !errors.Is(err, ErrUnhealthy) || errors.Is(err, ErrPeerURLExist) {
		t.Fatalf("err = %v, want ErrUnhealthy only", err)
	}
	cli = gatewayClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>not etcd</html>")
	})
	err = cli.post(context.Background(), cli.endpoints[0], pathStatus, struct{}{}, &statusResponse{})
	var etcdErr *Error
	if err == nil || errors.As(err, &etcdErr) || !strings.Contains(err.Error(), "502") {
		t.Fatalf("err = %v, want an HTTP error naming the status", err)
	}
}

// The member list's uint64 IDs arrive as JSON strings; the request's ID is
// sent as one.
func TestGatewayMemberJSON(t *testing.T) {
	cli := gatewayClient(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case pathMemberList:
			if string(body) != `{"linearizable":false}` {
				t.Errorf("list request %s", body)
			}
			io.WriteString(w, `{"header":{"cluster_id":"1"},"members":[{"ID":"18446744073709551615","name":"m0","peerURLs":["https://10.0.0.1:2380"],"isLearner":true}]}`)
		case pathMemberRemove:
			if string(body) != `{"ID":"18446744073709551615"}` {
				t.Errorf("remove request %s", body)
			}
			io.WriteString(w, `{}`)
		}
	})
	ms, err := cli.Membership(context.Background())
	if err != nil || len(ms) != 1 || ms[0].ID != 1<<64-1 || ms[0].Name != "m0" || !ms[0].Learner || ms[0].PeerURLs[0] != "https://10.0.0.1:2380" {
		t.Fatalf("Membership = %+v, %v", ms, err)
	}
	if err := cli.Remove(context.Background(), 1<<64-1); err != nil {
		t.Fatal(err)
	}
}

// snapshotStream writes db in chunks as the gateway streams a snapshot, then
// the trailing sha256 (sum), or an error message instead when fail is set.
func snapshotStream(w io.Writer, db, sum []byte, fail bool) {
	for len(db) > 0 {
		n := min(len(db), 1000)
		fmt.Fprintf(w, `{"result":{"remaining_bytes":"%d","blob":"%s"}}`+"\n", len(db)-n, base64.StdEncoding.EncodeToString(db[:n]))
		db = db[n:]
	}
	if fail {
		io.WriteString(w, `{"error":{"code":2,"message":"etcdserver: snapshot failed"}}`+"\n")
		return
	}
	fmt.Fprintf(w, `{"result":{"blob":"%s"}}`+"\n", base64.StdEncoding.EncodeToString(sum))
}

func TestSnapshotStreamChecks(t *testing.T) {
	db := []byte(strings.Repeat("bolt", 1024)) // 4096 bytes: a multiple of 512, as etcd's are
	good := sha256.Sum256(db)
	bad := sha256.Sum256(db[1:])
	for _, tc := range []struct {
		name   string
		db     []byte
		sum    []byte
		fail   bool
		wantOK bool
	}{
		{"intact", db, good[:], false, true},
		{"wrong checksum", db, bad[:], false, false},
		{"truncated", db[:2048], good[:], false, false},
		{"no checksum", db, nil, false, false},
		{"error mid-stream", db, good[:], true, false},
	} {
		cli := gatewayClient(t, func(w http.ResponseWriter, r *http.Request) { snapshotStream(w, tc.db, tc.sum, tc.fail) })
		var out strings.Builder
		err := cli.snapshot(context.Background(), cli.endpoints[0], &out)
		if (err == nil) != tc.wantOK {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if tc.wantOK && out.String() != string(db)+string(good[:]) {
			t.Errorf("%s: wrote %d bytes, want the database and its sha256", tc.name, out.Len())
		}
	}
}
