package dev.colo.daemon.config;

/** A bad config file: the message names the file, the line, the section and key, and what is wrong. */
public final class ConfigException extends Exception {
    public ConfigException(String message) {
        super(message);
    }
}
