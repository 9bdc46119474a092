module flightrecorder/bench/go

go 1.25
