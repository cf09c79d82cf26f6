// Command mkpayload turns the release build's outputs into knode's embedded payload: it
// compresses each blob of release.Spec (one zstd stream per blob; the release has one blob
// holding every file) into the payload directory,
// with the zstd program at -19 --long when it is installed (about 13% smaller than
// klauspost/compress's best level on this payload) or klauspost/compress otherwise,
// writes the image tarballs next to the binaries, and writes manifest.json with every size and
// digest. A blob whose files are unchanged since the last run is not compressed again.
//
//	mkpayload -root release/_build/root -out assets/payload
package main

import (
	"flag"
	"log/slog"
	"os"
)

func main() {
	var opts options
	flag.StringVar(&opts.root, "root", "release/_build/root", "build outputs, laid out as staged (bin/kube, ...)")
	flag.StringVar(&opts.out, "out", "assets/payload", "payload directory to write")
	flag.StringVar(&opts.compressor, "compressor", "auto",
		"zstd (the zstd program: -19 --long, the smallest payload), go (klauspost/compress, no tool needed) or auto (zstd when installed)")
	flag.StringVar(&opts.level, "level", "best", "go compressor's level: fastest, default, better or best")
	flag.IntVar(&opts.windowLog, "window-log", 27, "log2 of the zstd window; at most 27, the stager's limit (staging needs about this much memory)")
	flag.Parse()
	if err := run(opts, os.Stdout); err != nil {
		slog.Error("mkpayload failed", "err", err)
		os.Exit(1)
	}
}
