module knode.dev/knode/release/build/pause

go 1.26.8
