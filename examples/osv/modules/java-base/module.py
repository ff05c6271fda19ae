# Stub of OSv's `java-base` module (the real one builds java.so, the JVM
# launcher, and the isolated/non-isolated class loaders).
#
# OSv's launcher reads `non_isolated_jvm` from this module: when truthy, Java
# apps run in one plain JVM instead of io.osv.isolated.MultiJarLoader.
from osv.modules import api

non_isolated_jvm = False
