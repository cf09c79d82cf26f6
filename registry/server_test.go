package registry

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func get(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

func TestHandler(t *testing.T) {
	im := newTestImage(t, "example.com/team/app:v1", "hello layer", "second layer")
	s := storeWith(t, im)
	srv := httptest.NewServer(Handler(s, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	u := srv.URL
	layer := im.blobs[im.layers[0]]
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		status             int
		body               []byte
		headers            map[string]string
	}{
		{name: "ping", method: "GET", path: "/v2/", status: 200},
		{name: "manifest by tag", method: "GET", path: "/v2/team/app/manifests/v1?ns=example.com", status: 200, body: im.blobs[im.manifest],
			headers: map[string]string{"Content-Type": ocispec.MediaTypeImageManifest, "Docker-Content-Digest": im.manifest.String()}},
		{name: "manifest head", method: "HEAD", path: "/v2/team/app/manifests/v1?ns=example.com", status: 200,
			headers: map[string]string{"Content-Length": fmt.Sprint(len(im.blobs[im.manifest])), "Docker-Content-Digest": im.manifest.String()}},
		{name: "manifest by digest", method: "GET", path: "/v2/any/name/manifests/" + im.manifest.String(), status: 200, body: im.blobs[im.manifest]},
		{name: "tag of another registry", method: "GET", path: "/v2/team/app/manifests/v1", status: 404},
		{name: "unknown tag", method: "GET", path: "/v2/team/app/manifests/v2?ns=example.com", status: 404},
		{name: "blob", method: "GET", path: "/v2/team/app/blobs/" + im.layers[0].String(), status: 200, body: layer},
		{name: "blob head", method: "HEAD", path: "/v2/team/app/blobs/" + im.layers[0].String(), status: 200,
			headers: map[string]string{"Content-Length": fmt.Sprint(len(layer))}},
		{name: "range", method: "GET", path: "/v2/team/app/blobs/" + im.layers[0].String(), hdr: []string{"Range", "bytes=10-19"}, status: 206, body: layer[10:20],
			headers: map[string]string{"Content-Range": fmt.Sprintf("bytes 10-19/%d", len(layer))}},
		{name: "open range", method: "GET", path: "/v2/team/app/blobs/" + im.layers[0].String(), hdr: []string{"Range", "bytes=100-"}, status: 206, body: layer[100:]},
		{name: "suffix range", method: "GET", path: "/v2/team/app/blobs/" + im.layers[0].String(), hdr: []string{"Range", "bytes=-5"}, status: 206, body: layer[len(layer)-5:]},
		{name: "range past end", method: "GET", path: "/v2/team/app/blobs/" + im.layers[0].String(), hdr: []string{"Range", fmt.Sprintf("bytes=%d-", len(layer))}, status: 416},
		{name: "unknown blob", method: "GET", path: "/v2/team/app/blobs/sha256:" + fmt.Sprintf("%064x", 7), status: 404},
		{name: "bad digest", method: "GET", path: "/v2/team/app/blobs/sha256:xyz", status: 400},
		{name: "md5 digest", method: "GET", path: "/v2/team/app/blobs/md5:" + fmt.Sprintf("%032x", 7), status: 400},
		{name: "bad name", method: "GET", path: "/v2/Team/App/blobs/" + im.layers[0].String(), status: 400},
		{name: "bad ns", method: "GET", path: "/v2/team/app/manifests/v1?ns=a/b", status: 400},
		{name: "bad tag", method: "GET", path: "/v2/team/app/manifests/-x?ns=example.com", status: 400},
		{name: "push", method: "PUT", path: "/v2/team/app/manifests/v1", status: 405},
		{name: "catalog", method: "GET", path: "/v2/_catalog", status: 404},
		{name: "outside the API", method: "GET", path: "/etc/passwd", status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body, err := get(t, tc.method, u+tc.path, tc.hdr...)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if tc.body != nil && string(body) != string(tc.body) {
				t.Errorf("body of %d bytes differs from the %d expected", len(body), len(tc.body))
			}
			for k, v := range tc.headers {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

// A blob whose bytes on disk no longer match its digest is never served
// whole: the body is cut before its end, and a range is refused.
func TestHandlerCorruptBlob(t *testing.T) {
	im := newTestImage(t, "app:v1", string(make([]byte, 200000)))
	s, ctrd := storeWithCtrd(t, im)
	b := append([]byte(nil), im.blobs[im.layers[0]]...)
	b[len(b)/2] ^= 1
	ctrd.Damage(im.layers[0], b)
	srv := httptest.NewServer(Handler(s, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	res, body, err := get(t, "GET", srv.URL+"/v2/library/app/blobs/"+im.layers[0].String())
	if err == nil && len(body) == len(b) {
		t.Fatalf("corrupt blob served whole (status %d)", res.StatusCode)
	}
	res, _, err = get(t, "GET", srv.URL+"/v2/library/app/blobs/"+im.layers[0].String(), "Range", "bytes=0-9")
	if err != nil || res.StatusCode != http.StatusBadGateway {
		t.Fatalf("range of a corrupt blob: %v %v", res, err)
	}
	// The manifest (verified before it is sent) still is.
	if res, _, err := get(t, "GET", srv.URL+"/v2/library/app/manifests/v1"); err != nil || res.StatusCode != 200 {
		t.Fatalf("manifest: %v %v", res, err)
	}
}
