package etcdmember

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestListAndPrune(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var scheduled []string
	for i := range 7 {
		name := "scheduled-m-0-" + t0.Add(time.Duration(i)*time.Hour).Format(stamp) + ".db"
		scheduled = append(scheduled, name)
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	manual := "manual-m-0-" + t0.Add(-time.Hour).Format(stamp) + ".db"
	os.WriteFile(filepath.Join(dir, manual), []byte("xy"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "scheduled-m-0-garbage.db"), nil, 0o600)

	all, err := List(dir)
	if err != nil || len(all) != 8 {
		t.Fatalf("List = %d files, %v; want 8", len(all), err)
	}
	if all[0].Node != "m-0" || all[0].Kind != Scheduled || !all[0].Time.Equal(t0.Add(6*time.Hour)) || all[7].Kind != Manual || all[7].Size != 2 {
		t.Fatalf("List order or fields: first %+v, last %+v", all[0], all[7])
	}
	removed, err := Prune(dir, 5)
	if err != nil || len(removed) != 2 {
		t.Fatalf("Prune = %v, %v; want the 2 oldest scheduled", removed, err)
	}
	left, _ := List(dir)
	var names []string
	for _, f := range left {
		names = append(names, filepath.Base(f.Path))
	}
	if slices.Contains(names, scheduled[0]) || slices.Contains(names, scheduled[1]) || !slices.Contains(names, manual) || len(names) != 6 {
		t.Fatalf("after Prune: %v", names)
	}
	if files, err := List(filepath.Join(dir, "none")); err != nil || files != nil {
		t.Fatalf("List of a missing dir: %v %v", files, err)
	}
}
