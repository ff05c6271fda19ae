bootfs.bin: \
	libenviron.so \
	->/proc/mounts \
	dev \
	../H/lnk \
	../H/h \


