package io.example.greeter;

import java.io.FileInputStream;
import java.io.IOException;
import java.util.Properties;

public final class Main {
    public static void main(String[] args) throws IOException {
        Properties props = new Properties();
        String config = System.getProperty("greeter.config");
        if (config != null) {
            try (FileInputStream in = new FileInputStream(config)) {
                props.load(in);
            }
        }
        String name = "world";
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals("--name")) {
                name = args[i + 1];
            }
        }
        System.out.println(props.getProperty("greeting", "Hello") + ", " + name
                + props.getProperty("punctuation", "!"));
    }
}
