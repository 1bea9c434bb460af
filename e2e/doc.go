// Package e2e holds end-to-end tests: they build the project's commands,
// start them as real processes on 127.0.0.1 and drive them over the network
// as clients would, including Node clients built on NetEase's own
// pomelo-protocol and pomelo-protobuf codecs and NetEase's Node and browser
// clients (e2e/node), and compare shaddock with the Pomelo 2.2.7 peer run
// beside it (TestPomeloPeerParity, ../shared/peers/pomelo-chat).
//
// It is not a library: everything lives in _test.go files. Run it with
//
//	npm ci --prefix e2e/node   # once: the interop and browser tests need it
//	apt-get install -y chromium libnss3-tools # the browser tests drive Debian's chromium
//	go test -race -count=1 ./e2e/
package e2e
