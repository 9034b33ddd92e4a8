//go:build !unix

package wal

import "os"

// mapFile reads the file name: mapping is implemented on Unix only.
func mapFile(name string) (data []byte, release func(), err error) {
	data, err = os.ReadFile(name)
	return data, func() {}, err
}
