bootfs.bin: \
	data/one \
	data/über \
	data/big.bin \
	data/zero \
	data/one \
	data/two \
	data/dir \
	data/dirlink \
	->/usr/share/été \
	data/zero \


