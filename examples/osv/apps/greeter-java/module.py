# A Java application in the style of OSv's Java modules. run_java() requires
# the `java` module as soon as it is called, so evaluating this file pulls in
# modules/java (and, through it, modules/java-base). Java apps are started by
# one JVM launcher placed after all native apps on the command line; their
# main classes are listed in /etc/javamains.
#
# Nothing here needs a JDK: the jar would be built from src/ by javac in a
# real module; this example only ships the configuration file.
from osv.modules import api

default = api.run_java(
    classpath=['/greeter/greeter.jar', '/greeter/conf'],
    args='io.example.greeter.Main --name OSv',
    jvm_args=['-Xmx64m', '-Dgreeter.config=/greeter/conf/greeter.properties'])

# A second configuration, selected with `modules=greeter-java.delayed`.
delayed = api.delayed(default, 2)
