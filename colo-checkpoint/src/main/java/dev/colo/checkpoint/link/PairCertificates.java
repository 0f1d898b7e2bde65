package dev.colo.checkpoint.link;

import java.io.IOException;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * Creates a pair's own CA and the node certificates both daemons present on the link. Each pair
 * gets its own CA, so a certificate of another pair (or any other CA) is refused.
 */
public final class PairCertificates {
    private PairCertificates() {}

    /** The files of one node: its certificate and key, and the pair CA it trusts. */
    public record NodeFiles(Path certificate, Path privateKey, Path caCertificate) {}

    /** A CA held in memory while certificates are issued. */
    public record Ca(KeyPair keys, X509Certificate certificate) {}

    public static Ca newCa(String pair, Duration validity) throws Exception {
        KeyPair keys = keyPair();
        X500Name name = new X500Name("CN=colo pair CA " + pair);
        Instant now = Instant.now();
        JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(name, serial(), Date.from(now.minusSeconds(60)),
                Date.from(now.plus(validity)), name, keys.getPublic());
        b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
        return new Ca(keys, sign(b, keys));
    }

    /** Issues a node certificate (usable as TLS client and server) and writes the three PEM files. */
    public static NodeFiles issue(Ca ca, String node, Duration validity, Path dir) throws Exception {
        KeyPair keys = keyPair();
        Instant now = Instant.now();
        JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(ca.certificate(), serial(), Date.from(now.minusSeconds(60)),
                Date.from(now.plus(validity)), new X500Name("CN=" + node), keys.getPublic());
        b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
        b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
        X509Certificate cert = sign(b, ca.keys());
        Files.createDirectories(dir);
        Path certFile = dir.resolve(node + ".crt");
        Path keyFile = dir.resolve(node + ".key");
        Path caFile = dir.resolve("pair-ca.crt");
        Files.writeString(certFile, pem(cert));
        Files.writeString(keyFile, pem(new org.bouncycastle.openssl.jcajce.JcaPKCS8Generator(keys.getPrivate(), null))); // Netty reads PKCS#8
        Files.setPosixFilePermissions(keyFile, PosixFilePermissions.fromString("rw-------"));
        Files.writeString(caFile, pem(ca.certificate()));
        return new NodeFiles(certFile, keyFile, caFile);
    }

    private static KeyPair keyPair() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(256);
        return g.generateKeyPair();
    }

    private static BigInteger serial() {
        return new BigInteger(64, new SecureRandom()).abs().add(BigInteger.ONE);
    }

    private static X509Certificate sign(JcaX509v3CertificateBuilder b, KeyPair signer) throws Exception {
        return new JcaX509CertificateConverter().getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(signer.getPrivate())));
    }

    private static String pem(Object o) throws IOException {
        StringWriter w = new StringWriter();
        try (JcaPEMWriter p = new JcaPEMWriter(w)) {
            p.writeObject(o);
        }
        return w.toString();
    }
}
