package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Handler serves the read-only part of the OCI distribution API from src:
//
//	GET /v2/                                     200 (the API is here)
//	GET|HEAD /v2/<name>/manifests/<tag|digest>   the manifest, verified
//	GET|HEAD /v2/<name>/blobs/<digest>           the blob, verified; one Range
//
// Anything else is 404 or 405 (containerd then tries its next host). The
// query parameter ns (the registry host containerd asked for, which it adds
// when it talks to a mirror) qualifies the name: docker.io when absent.
func Handler(src Source, log *slog.Logger) http.Handler {
	return &handler{src: src, log: log}
}

type handler struct {
	src Source
	log *slog.Logger
}

// The distribution spec's grammar for names, tags and registry hosts.
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	hostRE = regexp.MustCompile(`^[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?$`)
)

const maxNameLen = 255

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read only")
		return
	}
	p := r.URL.Path
	if p == "/v2/" || p == "/v2" {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "not a distribution API path")
		return
	}
	var kind string
	i := strings.LastIndex(rest, "/manifests/")
	j := strings.LastIndex(rest, "/blobs/")
	var name, ref string
	switch {
	case i > 0 && i > j:
		kind, name, ref = "manifests", rest[:i], rest[i+len("/manifests/"):]
	case j > 0:
		kind, name, ref = "blobs", rest[:j], rest[j+len("/blobs/"):]
	default:
		apiError(w, http.StatusNotFound, "NOT_FOUND", "not a distribution API path")
		return
	}
	if len(name) > maxNameLen || !nameRE.MatchString(name) {
		apiError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("invalid repository name %q", name))
		return
	}
	host := r.URL.Query().Get("ns")
	if host == "" {
		host = "docker.io"
	}
	if !hostRE.MatchString(host) {
		apiError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("invalid registry host %q", host))
		return
	}
	if kind == "manifests" {
		h.manifest(w, r, host+"/"+name, ref)
		return
	}
	d, err := checkDigest(ref)
	if err != nil {
		apiError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		return
	}
	h.blob(w, r, d)
}

// manifest serves a manifest by tag or digest.
func (h *handler) manifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	ctx := r.Context()
	var d digest.Digest
	if strings.Contains(ref, ":") {
		var err error
		if d, err = checkDigest(ref); err != nil {
			apiError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
			return
		}
	} else {
		if !tagRE.MatchString(ref) {
			apiError(w, http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf("invalid tag %q", ref))
			return
		}
		var err error
		if d, err = h.src.Resolve(ctx, name+":"+ref); err != nil {
			h.fail(w, r, "MANIFEST_UNKNOWN", err)
			return
		}
	}
	b, mt, err := readManifest(ctx, h.src, d)
	if err != nil {
		h.fail(w, r, "MANIFEST_UNKNOWN", err)
		return
	}
	w.Header().Set("Content-Type", mt)
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(b)
	}
}

// blob serves a blob, whole or one byte range. A whole blob is verified as
// it streams (the connection is cut before its last bytes if it does not
// match); a range is served only after the whole blob was read and matched.
func (h *handler) blob(w http.ResponseWriter, r *http.Request, d digest.Digest) {
	ctx := r.Context()
	size, err := h.src.Size(ctx, d)
	if err != nil {
		h.fail(w, r, "BLOB_UNKNOWN", err)
		return
	}
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Accept-Ranges", "bytes")
	start, end, partial, err := parseRange(r.Header.Get("Range"), size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		apiError(w, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID", err.Error())
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return
	}
	if partial {
		if err := h.verifyWhole(ctx, d); err != nil {
			h.fail(w, r, "BLOB_UNKNOWN", err)
			return
		}
	}
	rc, n, err := h.src.Open(ctx, d)
	if err != nil {
		h.fail(w, r, "BLOB_UNKNOWN", err)
		return
	}
	defer rc.Close()
	if n != size {
		h.fail(w, r, "BLOB_UNKNOWN", fmt.Errorf("blob %s: size changed from %d to %d", d, size, n))
		return
	}
	var body io.Reader = newVerifier(rc, d, size)
	status := http.StatusOK
	if partial {
		if _, err := io.CopyN(io.Discard, rc, start); err != nil {
			h.fail(w, r, "BLOB_UNKNOWN", fmt.Errorf("blob %s: %w", d, err))
			return
		}
		body = io.LimitReader(rc, end-start+1)
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	w.WriteHeader(status)
	if _, err := io.Copy(w, body); err != nil {
		h.log.Warn("blob transfer cut", "digest", d, "remote", r.RemoteAddr, "err", err)
		panic(http.ErrAbortHandler) // the client must not take a short body for a whole one
	}
}

// verifyWhole reads the blob d once and checks it against its digest.
func (h *handler) verifyWhole(ctx context.Context, d digest.Digest) error {
	rc, size, err := h.src.Open(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, newVerifier(rc, d, size))
	return err
}

// fail answers an error: 404 for content not held (containerd tries its
// next host), 502 for anything else.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, code string, err error) {
	if errors.Is(err, ErrNotFound) {
		apiError(w, http.StatusNotFound, code, err.Error())
		return
	}
	h.log.Warn("registry request failed", "path", r.URL.Path, "err", err)
	apiError(w, http.StatusBadGateway, code, err.Error())
}

// parseRange reads a single byte range ("bytes=a-b", "bytes=a-",
// "bytes=-n"); anything else is the whole blob.
func parseRange(s string, size int64) (start, end int64, partial bool, err error) {
	spec, ok := strings.CutPrefix(s, "bytes=")
	if s == "" || !ok || strings.Contains(spec, ",") {
		return 0, size - 1, false, nil
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, false, fmt.Errorf("bad range %q", s)
	}
	switch {
	case a == "":
		n, perr := strconv.ParseInt(b, 10, 64)
		if perr != nil || n <= 0 {
			return 0, 0, false, fmt.Errorf("bad range %q", s)
		}
		start, end = max(size-n, 0), size-1
	default:
		var perr error
		if start, perr = strconv.ParseInt(a, 10, 64); perr != nil || start < 0 {
			return 0, 0, false, fmt.Errorf("bad range %q", s)
		}
		end = size - 1
		if b != "" {
			if end, perr = strconv.ParseInt(b, 10, 64); perr != nil || end < start {
				return 0, 0, false, fmt.Errorf("bad range %q", s)
			}
			end = min(end, size-1)
		}
	}
	if start >= size {
		return 0, 0, false, fmt.Errorf("range %q starts beyond the blob's %d bytes", s, size)
	}
	return start, end, true, nil
}

// apiError writes the distribution API's error body (typed, one error).
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	writeJSON(w, errorsBody{Errors: []errorBody{{Code: code, Message: msg}}})
}

type errorsBody struct {
	Errors []errorBody `json:"errors"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
