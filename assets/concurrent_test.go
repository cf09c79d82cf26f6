package assets

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestConcurrentStageInOneProcess(t *testing.T) {
	payload, _ := synthetic(t)
	dir := t.TempDir()
	const n = 4
	var wg sync.WaitGroup
	written := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := StageFS(context.Background(), payload, dir, nil)
			written[i], errs[i] = s.Written, err
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("stager %d: %v", i, errs[i])
		}
		total += written[i]
	}
	if total != 6 {
		t.Errorf("stagers wrote %v items in all, want 6: exactly one of them stages", written)
	}
	assertNoTemporaries(t, dir)
}

// The helper process stages the synthetic payload into KNODE_TEST_STAGE_DIR and prints how
// many items it wrote.
func TestHelperStageProcess(t *testing.T) {
	dir := os.Getenv("KNODE_TEST_STAGE_DIR")
	if dir == "" {
		t.Skip("helper for TestConcurrentStageAcrossProcesses")
	}
	payload, _ := synthetic(t)
	s, err := StageFS(context.Background(), payload, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("written=%d\n", s.Written)
}

func TestConcurrentStageAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	const n = 3
	cmds := make([]*exec.Cmd, n)
	outs := make([]*strings.Builder, n)
	for i := range n {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperStageProcess$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "KNODE_TEST_STAGE_DIR="+dir)
		outs[i] = &strings.Builder{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
		_, after, ok := strings.Cut(outs[i].String(), "written=")
		if !ok {
			t.Fatalf("process %d printed no count:\n%s", i, outs[i])
		}
		w, err := strconv.Atoi(strings.Fields(after)[0])
		if err != nil {
			t.Fatal(err)
		}
		total += w
	}
	if total != 6 {
		t.Errorf("processes wrote %d items in all, want 6", total)
	}
	payload, _ := synthetic(t)
	s, err := StageFS(context.Background(), payload, dir, nil)
	if err != nil || s.Written != 0 {
		t.Errorf("staging after the processes: written %d, %v; want 0, nil", s.Written, err)
	}
	assertNoTemporaries(t, dir)
}
