package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"knode.dev/knode/config"
	"knode.dev/knode/etcdmember"
)

// The local agent serves its status over a unix socket in the data directory
// (0600: only root, or the user that runs the agent, may ask).
type apiServer struct {
	srv *http.Server
	ln  net.Listener
}

func serveAPI(path string, a *Agent) (*apiServer, error) {
	if len(path) > 100 {
		return nil, fmt.Errorf("socket path %s is too long for a unix socket: use a shorter --data-dir", path)
	}
	// A socket left by a crashed agent is stale once nothing answers on it.
	if _, err := os.Stat(path); err == nil {
		if c, derr := net.DialTimeout("unix", path, 200*time.Millisecond); derr == nil {
			c.Close()
			return nil, fmt.Errorf("an agent is already running on %s: stop it first (systemctl stop knode, or end that process)", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Status())
	})
	mux.HandleFunc("POST /v1/remove", func(w http.ResponseWriter, r *http.Request) {
		// A master leaves etcd first; the answer says how that went.
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		var res LeaveResult
		if id, err := a.leaveEtcd(ctx); err != nil {
			res.EtcdError = err.Error()
		} else {
			res.EtcdMember = id
		}
		cancel()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
		// Remove stops this server: run it after the answer is sent.
		go a.Remove(10 * time.Second)
	})
	mux.HandleFunc("POST /v1/nodes/{name}/remove", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		res, err := a.RemoveNode(ctx, r.PathValue("name"), r.URL.Query().Get("force") == "true")
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(removeStatus(err))
			json.NewEncoder(w).Encode(apiError{Error: err.Error()})
			return
		}
		json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("GET /v1/images", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Images())
	})
	mux.HandleFunc("POST /v1/etcd/restored", func(w http.ResponseWriter, r *http.Request) {
		var req EtcdRestoreRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if err := a.EtcdRestored(req.At); err != nil {
			writeError(w, httpStatusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Tokens())
	})
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req TokenRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		nt, err := a.CreateToken(req)
		if err != nil {
			writeError(w, httpStatusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, nt)
	})
	mux.HandleFunc("DELETE /v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.DeleteToken(r.PathValue("id")); err != nil {
			writeError(w, httpStatusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/gossip-key/rotate", func(w http.ResponseWriter, r *http.Request) {
		var req RotateRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), min(max(req.Timeout, time.Second), 10*time.Minute))
		defer cancel()
		rep, err := a.RotateGossipKey(ctx, req.Force)
		if err != nil {
			writeJSON(w, httpStatusOf(err), rotateAnswer{RotateReport: rep, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rotateAnswer{RotateReport: rep})
	})
	s := &apiServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *apiServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// TokenRequest asks the agent for a new join token.
type TokenRequest struct {
	TTL         time.Duration `json:"ttl"` // 0: no expiry
	Description string        `json:"description,omitempty"`
	Master      bool          `json:"master,omitempty"` // may take a free master seat
	Uses        uint32        `json:"uses,omitempty"`   // machines it may admit; 0: no limit
}

// RotateRequest asks a master to rotate the gossip key.
type RotateRequest struct {
	Force   bool          `json:"force"`
	Timeout time.Duration `json:"timeout"` // for the whole rotation (every node, every step)
}

type rotateAnswer struct {
	RotateReport
	Error string `json:"error,omitempty"`
}

// apiError is how the API reports a failure.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiError{Error: err.Error()})
}

func httpStatusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotMaster):
		return http.StatusForbidden
	case errors.Is(err, ErrNoToken):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// Call sends one request to the agent on socket (body: JSON of in, when not
// nil) and decodes its JSON answer into out (when not nil). An error the
// agent reports comes back as an error with its text; ErrNotMaster and
// ErrNoToken are recognised.
func Call(ctx context.Context, socket, method, path string, in, out any) error {
	if _, err := os.Stat(socket); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w here (%s does not exist): start one with `knode init` or `knode join`, or pass the node's --data-dir", ErrNoAgent, socket)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://knode"+path, body)
	if err != nil {
		return err
	}
	resp, err := socketClient(socket).Do(req)
	if err != nil {
		return fmt.Errorf("%w on %s (%v): start it with `systemctl start knode` (see `journalctl -u knode` for why it stopped)", ErrNoAgent, socket, unwrapDial(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e apiError
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e) != nil || e.Error == "" {
			return fmt.Errorf("agent on %s answered %s", socket, resp.Status)
		}
		switch resp.StatusCode {
		case http.StatusBadRequest:
			return config.Usagef("%s", e.Error) // the request named a bad value
		case http.StatusForbidden:
			return fmt.Errorf("%w", ErrNotMaster)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNoToken, e.Error)
		}
		return errors.New(e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent on %s sent an unreadable answer: %w", socket, err)
	}
	return nil
}

// ErrNoAgent says nothing answers on the data directory's socket.
var ErrNoAgent = errors.New("no knode agent is running")

// QueryStatus asks the agent listening on socket for its status.
func QueryStatus(ctx context.Context, socket string) (Status, error) {
	var st Status
	err := Call(ctx, socket, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// LeaveResult says how a master left etcd before `knode reset`.
type LeaveResult struct {
	// EtcdMember is the hex ID of this master's etcd member, removed.
	EtcdMember string `json:"etcdMember,omitempty"`
	// EtcdError says why it was not removed (`knode remove` on another
	// master removes it).
	EtcdError string `json:"etcdError,omitempty"`
}

// RequestRemove asks the agent on socket to leave the cluster for good
// (`knode reset`): a master first leaves etcd. It returns once the agent has
// left.
func RequestRemove(ctx context.Context, socket string) (LeaveResult, error) {
	var res LeaveResult
	client := socketClient(socket)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://knode/v1/remove", nil)
	if err != nil {
		return res, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return res, fmt.Errorf("%w on %s (%v): start it with `systemctl start knode` (see `journalctl -u knode` for why it stopped)", ErrNoAgent, socket, unwrapDial(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return res, fmt.Errorf("agent on %s answered %s", socket, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil {
		return res, fmt.Errorf("agent on %s sent an unreadable answer: %w", socket, err)
	}
	// The agent leaves after answering; wait for its socket to close.
	for ctx.Err() == nil {
		c, err := net.DialTimeout("unix", socket, 200*time.Millisecond)
		if err != nil {
			return res, nil
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return res, ctx.Err()
}

// unwrapDial keeps the reason of a failed dial (connection refused) without
// net/http's request prefix.
func unwrapDial(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// removeStatus is the HTTP status of a refused removal: the client turns
// 400 back into a usage error (exit code 2).
func removeStatus(err error) int {
	switch {
	case config.IsUsage(err):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotMaster):
		return http.StatusForbidden
	case errors.Is(err, ErrAlive), errors.Is(err, etcdmember.ErrQuorum):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// RequestRemoveNode asks the agent on socket (a master's) to remove the node
// name (`knode remove`).
func RequestRemoveNode(ctx context.Context, socket, name string, force bool) (RemoveResult, error) {
	path := "/v1/nodes/" + url.PathEscape(name) + "/remove"
	if force {
		path += "?force=true"
	}
	var res RemoveResult
	err := Call(ctx, socket, http.MethodPost, path, nil, &res)
	return res, err
}

// socketClient talks HTTP to the agent's unix socket.
func socketClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
}
