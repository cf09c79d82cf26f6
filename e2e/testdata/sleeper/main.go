// Command sleeper is the entrypoint of the image the images scenario imports: a static
// binary that runs until it is told to stop, so its pods stay Running.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
