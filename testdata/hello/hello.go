// Command hello prints "hello world". It is the program of the classic "build an image
// from scratch by hand" recipe; the tests and the README build it as a static binary
// and COPY it into an image.
package main

import "os"

func main() {
	os.Stdout.WriteString("hello world\n")
}
