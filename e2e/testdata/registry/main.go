// Command registry is the e2e lab's real registry: upstream distribution's registry
// (github.com/distribution/distribution/v3, the one Docker Hub's registry grew from) with its
// in-memory storage driver, serving plain HTTP. At start it pushes the OCI image-layout tarballs
// named as arguments into itself through its own distribution API (blob uploads, then the
// manifest under its tag), so the lab needs no other client, then prints "ready".
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	addr := flag.String("addr", ":5000", "address to serve the registry on")
	flag.Parse()
	cfg, err := configuration.Parse(strings.NewReader(fmt.Sprintf(
		"version: 0.1\nlog: {level: info}\nstorage: {inmemory: {}}\nhttp: {addr: %q}\n", *addr)))
	if err != nil {
		log.Fatalf("configuration: %v", err)
	}
	reg, err := registry.NewRegistry(context.Background(), cfg)
	if err != nil {
		log.Fatalf("registry: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- reg.ListenAndServe() }()
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("-addr %s: %v", *addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	base := "http://" + net.JoinHostPort(host, port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(base + "/v2/"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("the registry did not start")
		}
	}
	for _, p := range flag.Args() {
		if err := pushLayout(base, p); err != nil {
			log.Fatalf("push %s: %v", p, err)
		}
	}
	fmt.Println("ready")
	log.Fatal(<-errc)
}

// pushLayout pushes every named image of the OCI layout tarball p: its blobs, then each
// manifest under the tag of its io.containerd.image.name annotation (else
// org.opencontainers.image.ref.name) with a full name, host/repo:tag (the host part is dropped).
func pushLayout(base, p string) error {
	files, err := readTar(p)
	if err != nil {
		return err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	for _, m := range idx.Manifests {
		ref := m.Annotations["io.containerd.image.name"]
		if ref == "" {
			ref = m.Annotations[ocispec.AnnotationRefName]
		}
		i := strings.LastIndex(ref, ":")
		_, repo, ok := strings.Cut(ref[:max(i, 0)], "/")
		if i < 0 || !ok {
			return fmt.Errorf("manifest %s: no host/repo:tag name (%q)", m.Digest, ref)
		}
		tag := ref[i+1:]
		mb := files["blobs/sha256/"+m.Digest.Encoded()]
		var man ocispec.Manifest
		if err := json.Unmarshal(mb, &man); err != nil {
			return fmt.Errorf("manifest %s: %w", m.Digest, err)
		}
		for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			if err := pushBlob(base, repo, d, files["blobs/sha256/"+d.Digest.Encoded()]); err != nil {
				return err
			}
		}
		req, _ := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(mb))
		req.Header.Set("Content-Type", m.MediaType)
		if err := do(req, http.StatusCreated); err != nil {
			return fmt.Errorf("manifest %s:%s: %w", repo, tag, err)
		}
		log.Printf("pushed %s:%s %s", repo, tag, m.Digest)
	}
	return nil
}

// pushBlob uploads one blob in a single PUT (the monolithic upload of the distribution API).
func pushBlob(base, repo string, d ocispec.Descriptor, b []byte) error {
	if b == nil {
		return fmt.Errorf("blob %s is not in the layout", d.Digest)
	}
	res, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload of %s: %s", d.Digest, res.Status)
	}
	loc, err := res.Location()
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", d.Digest.String())
	loc.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := do(req, http.StatusCreated); err != nil {
		return fmt.Errorf("upload %s: %w", d.Digest, err)
	}
	return nil
}

func do(req *http.Request, want int) error {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", req.Method, (&url.URL{Path: req.URL.Path}).String(), res.Status, b)
	}
	return nil
}

// readTar reads every regular file of a (small) tarball into memory.
func readTar(p string) (map[string][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			files[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
}
