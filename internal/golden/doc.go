// Package golden compares test output with files under testdata/ and
// rewrites them when the tests run with -update. It registers the one
// -update flag every package's tests share, so no test file registers its
// own.
package golden
