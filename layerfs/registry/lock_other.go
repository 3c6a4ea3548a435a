//go:build !unix

package registry

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// lockFile takes an exclusive lock on p by creating p+".held" exclusively, waiting
// up to a minute for another holder; the returned function releases it. Systems
// without flock get this simpler lock.
func lockFile(p string) (func(), error) {
	held := p + ".held"
	deadline := time.Now().Add(time.Minute)
	for {
		f, err := os.OpenFile(held, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
			return func() { os.Remove(held) }, nil
		}
		if !errors.Is(err, fs.ErrExist) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
