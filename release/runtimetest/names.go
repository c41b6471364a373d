package runtimetest

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

var nameSeq atomic.Int64

// NewName returns a fresh valid release name of service, distinct from
// every other NewName of this process and, by a random spec part, unlikely
// to meet one of another process on the same host.
func NewName(service string) string {
	return fmt.Sprintf("%s_%012x_%06x", service, nameSeq.Add(1), rand.IntN(1<<24))
}
