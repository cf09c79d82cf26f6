// Package release pins the version of every upstream component knode embeds and describes
// the payload built from them: which files, under which staged paths, in which compressed
// blobs, the programs they provide and the images assembled from them.
//
// The versions live in versions.env (read by release/payload.mk); versions.go repeats them
// as constants for Go code, and a test keeps the two, and the helper modules under
// release/build, in agreement. The build itself is release/payload.mk; release/cmd/mkpayload
// compresses its outputs into assets/payload.
package release
