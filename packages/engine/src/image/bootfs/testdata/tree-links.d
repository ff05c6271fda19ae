bootfs.bin: \
	README \
	empty \
	../m/app/zz \
	../m/app/bin/tool \
	../m/app/lib/libz.so.1.2 \
	../m/app/lib/libz.so.1.2 \
	../m/app/lib/sub/a.txt \
	../m/app/lib/sub/deeper/x.txt \
	../m/app/share/doc/NOTES \
	../static/etc/hosts \
	../static/etc/services \
	../sys/usr/lib/libreal.so.3 \
	../m/app/lib/libz.so.1.2 \
	../H/x-stripped.so \
	etc \
	->/dev/null \
	../H/plain \


