package manifest

import (
	"io/fs"
	"strings"
	"testing"

	"knode.dev/knode/release/oci"
)

var zero = strings.Repeat("0", 64)

func valid() Manifest {
	return Manifest{
		Schema: Schema,
		Blobs:  []Blob{{Name: "kube.zst", Size: 10, Files: []string{"kube"}}, {Name: "rt.zst", Size: 5, Files: []string{"runc", "pause"}}},
		Files: []File{
			{Name: "kube", Path: "bin/kube", Mode: 0o755, Blob: "kube.zst", Size: 100, SHA256: zero},
			{Name: "runc", Path: "bin/runc", Mode: 0o755, Blob: "rt.zst", Size: 3, SHA256: zero},
			{Name: "pause", Path: "bin/pause", Mode: 0o755, Blob: "rt.zst", Size: 2, SHA256: zero},
		},
		Programs: []Program{
			{Name: "kube", File: "kube", Path: "bin/kube"},
			{Name: "kubelet", File: "kube", Path: "bin/kubelet"},
		},
		Images: []Image{{Name: "pause", Path: "images/pause.tar", SHA256: zero, Image: oci.Image{
			Ref: "registry.k8s.io/pause:3.10.2", Files: []oci.File{{Path: "pause", Mode: 0o755, Source: "bin/pause"}},
		}}},
	}
}

func TestParseRoundTrip(t *testing.T) {
	data, err := valid().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := m.File("pause"); !ok || f.Blob != "rt.zst" || f.Mode != 0o755 {
		t.Errorf("File(pause) = %+v, %v", f, ok)
	}
	if p, ok := m.Program("kubelet"); !ok || p.File != "kube" {
		t.Errorf("Program(kubelet) = %+v, %v", p, ok)
	}
	if img, ok := m.Image("pause"); !ok || img.Image.Ref != "registry.k8s.io/pause:3.10.2" {
		t.Errorf("Image(pause) = %+v, %v", img, ok)
	}
	if _, err := Parse([]byte("{not json")); err == nil {
		t.Error("Parse accepted broken JSON")
	}
}

func TestValidateRejects(t *testing.T) {
	cases := map[string]func(*Manifest){
		"schema":                 func(m *Manifest) { m.Schema = 2 },
		"no files":               func(m *Manifest) { m.Files, m.Blobs, m.Programs, m.Images = nil, nil, nil, nil },
		"duplicate file":         func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) },
		"absolute path":          func(m *Manifest) { m.Files[0].Path = "/bin/kube" },
		"unclean path":           func(m *Manifest) { m.Files[0].Path = "bin/../kube" },
		"escaping path":          func(m *Manifest) { m.Files[0].Path = "../kube" },
		"hidden name":            func(m *Manifest) { m.Files[0].Path = "bin/.staged" },
		"short sha":              func(m *Manifest) { m.Files[0].SHA256 = "abc" },
		"mode bits":              func(m *Manifest) { m.Files[0].Mode = fs.ModeSetuid | 0o755 },
		"blob not listing file":  func(m *Manifest) { m.Files[0].Blob = "rt.zst" },
		"blob with unknown file": func(m *Manifest) { m.Blobs[0].Files = append(m.Blobs[0].Files, "ghost") },
		"blob path":              func(m *Manifest) { m.Blobs[0].Name = "x/kube.zst"; m.Files[0].Blob = "x/kube.zst" },
		"blob twice":             func(m *Manifest) { m.Blobs = append(m.Blobs, Blob{Name: "kube.zst", Size: 1, Files: []string{"x"}}) },
		"empty blob":             func(m *Manifest) { m.Blobs[0].Size = 0 },
		"same path twice":        func(m *Manifest) { m.Files[1].Path = "bin/kube" },
		"program unknown file":   func(m *Manifest) { m.Programs[1].File = "ghost" },
		"link clashes with file": func(m *Manifest) { m.Programs[1].Path = "bin/runc" },
		"link in another dir":    func(m *Manifest) { m.Programs[1].Path = "sbin/kubelet" },
		"image without tag":      func(m *Manifest) { m.Images[0].Image.Ref = "registry.k8s.io/pause" },
		"image unknown source":   func(m *Manifest) { m.Images[0].Image.Files[0].Source = "bin/ghost" },
		"image source is a link": func(m *Manifest) { m.Images[0].Image.Files[0].Source = "bin/kubelet" },
		"image path clash":       func(m *Manifest) { m.Images[0].Path = "bin/kube" },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			m := valid()
			breakIt(&m)
			if err := m.Validate(); err == nil {
				t.Fatal("Validate accepted a broken manifest")
			}
		})
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
}
