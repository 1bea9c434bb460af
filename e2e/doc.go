// Package e2e holds end-to-end tests: they build the project's commands,
// start them as real processes on 127.0.0.1 and drive them over the network
// as clients would, including a Node client built on NetEase's own
// pomelo-protocol codec (e2e/node).
//
// It is not a library: everything lives in _test.go files. Run it with
//
//	npm ci --prefix e2e/node   # once: the interop and browser tests need it
//	apt-get install -y chromium # the browser test drives Debian's chromium
//	go test -race -count=1 ./e2e/
package e2e
