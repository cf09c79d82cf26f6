// Command mkpayload turns the release build's outputs into knode's payload: it
// compresses each blob of release.Spec (one zstd stream per blob; the release has one blob
// holding every file) into the payload directory,
// with the zstd program at -19 --long when it is installed (about 13% smaller than
// klauspost/compress's best level on this payload) or klauspost/compress otherwise,
// writes the image tarballs next to the binaries, and writes manifest.json with every size and
// digest. A blob whose files are unchanged since the last run is not compressed again.
//
// With -launcher and -bin it then writes the release's bin/knode: the launcher program with
// the payload directory appended (knode.dev/knode/release/appended).
//
//	mkpayload -root release/_build/root -out assets/payload -knode-version v0.1.0 \
//		-launcher release/_build/knode-launcher -bin bin/knode
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
	flag.IntVar(&opts.windowLog, "window-log", 28, "log2 of the zstd window; at most 28, the stager's limit (staging needs about this much memory)")
	flag.StringVar(&opts.spec.KnodeVersion, "knode-version", "", "the version knode's program (root/bin/knode) reports")
	flag.BoolVar(&opts.spec.KnodeApart, "knode-apart", false,
		"compress knode's program into a blob of its own: a changed knode then recompresses 25 MB instead of the whole stream (about 2 MB larger)")
	flag.StringVar(&opts.launcher, "launcher", "", "the launcher program; with -bin, write the launcher with the payload appended")
	flag.StringVar(&opts.bin, "bin", "", "where to write the launcher with the payload appended (bin/knode)")
	flag.BoolVar(&opts.appendOnly, "append", false, "only write -bin from -launcher and the payload already in -out")
	flag.Parse()
	if err := run(opts, os.Stdout); err != nil {
		slog.Error("mkpayload failed", "err", err)
		os.Exit(1)
	}
}
