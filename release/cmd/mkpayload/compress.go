package main

import (
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// encoder compresses one blob into one zstd stream with a checksum.
type encoder interface {
	compress(dst io.Writer, src io.Reader) error
	String() string
}

func newEncoder(opts options) (encoder, error) {
	cli, lookErr := exec.LookPath("zstd")
	switch {
	case opts.compressor == "zstd" && lookErr != nil:
		return nil, fmt.Errorf("compressor zstd: %w (apt-get install zstd, or make PAYLOAD_COMPRESSOR=go for a payload about 9 MB larger)", lookErr)
	case opts.compressor == "zstd", opts.compressor == "auto" && lookErr == nil:
		return cliEncoder{path: cli, windowLog: opts.windowLog}, nil
	case opts.compressor == "go", opts.compressor == "auto":
		ok, level := zstd.EncoderLevelFromString(opts.level)
		if !ok {
			return nil, fmt.Errorf("unknown zstd level %q", opts.level)
		}
		return goEncoder{level: level, windowLog: opts.windowLog}, nil
	}
	return nil, fmt.Errorf("unknown compressor %q: want zstd, go or auto", opts.compressor)
}

// cliEncoder runs the zstd program: level 19 with long-distance matching finds the repeats
// between the files of a blob and far apart inside the large multi-call binary.
type cliEncoder struct {
	path      string
	windowLog int
}

func (e cliEncoder) args() []string {
	return []string{"-19", "--long=" + strconv.Itoa(e.windowLog), "-T0", "-q", "-c", "-"}
}

func (e cliEncoder) String() string { return fmt.Sprintf("zstd -19 --long=%d", e.windowLog) }

func (e cliEncoder) compress(dst io.Writer, src io.Reader) error {
	var stderr strings.Builder
	cmd := exec.Command(e.path, e.args()...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = src, dst, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", e, err, stderr.String())
	}
	return nil
}

// goEncoder uses klauspost/compress, which needs no tool but has no long-distance matching.
type goEncoder struct {
	level     zstd.EncoderLevel
	windowLog int
}

func (e goEncoder) String() string {
	return fmt.Sprintf("klauspost/compress zstd level %s window 2^%d", e.level, e.windowLog)
}

func (e goEncoder) compress(dst io.Writer, src io.Reader) error {
	enc, err := zstd.NewWriter(dst, zstd.WithEncoderLevel(e.level), zstd.WithWindowSize(1<<e.windowLog),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, src); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}
