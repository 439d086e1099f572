module github.com/ipcluster/ipcluster

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/pebbe/zmq4 v1.4.0
	github.com/vmihailenco/msgpack/v5 v5.4.1
	go.uber.org/goleak v1.3.0
)

require github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
