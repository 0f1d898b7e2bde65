package dev.colo.host.libvirt;

import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import java.io.StringReader;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;

/**
 * Derives the protected VM definitions from the operator's own libvirt domain XML. Pure: strings in,
 * strings out. Each {@code with…} returns a new document and leaves the input alone.
 */
public final class DomainXml {
    static final String QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0";

    private final Document doc;

    private DomainXml(Document doc) {
        this.doc = doc;
    }

    public static DomainXml parse(String xml) {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setNamespaceAware(true);
            f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
            f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            DocumentBuilder b = f.newDocumentBuilder();
            // The default handler prints "[Fatal Error]" to stderr; our exception already says it.
            b.setErrorHandler(new org.xml.sax.helpers.DefaultHandler());
            Document d = b.parse(new InputSource(new StringReader(xml)));
            if (!"domain".equals(d.getDocumentElement().getLocalName())) {
                throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN,
                        "not a libvirt domain definition: root element is <" + d.getDocumentElement().getTagName() + ">");
            }
            return new DomainXml(d);
        } catch (HypervisorException e) {
            throw e;
        } catch (Exception e) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "malformed domain XML: " + e.getMessage(), e);
        }
    }

    private DomainXml copy() {
        return new DomainXml((Document) doc.cloneNode(true));
    }

    private Element root() {
        return doc.getDocumentElement();
    }

    public String name() {
        return text(root(), "name").orElseThrow(() -> new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain XML has no <name>"));
    }

    public Optional<String> uuid() {
        return text(root(), "uuid");
    }

    /** The domain type attribute: {@code kvm} in production, {@code qemu} (TCG) in the lab. */
    public String accelerator() {
        return root().getAttribute("type");
    }

    /** Guest memory in bytes, from {@code <memory unit=…>}. */
    public long memoryBytes() {
        Element m = child(root(), "memory").orElseThrow(() -> new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain XML has no <memory>"));
        long value = Long.parseLong(m.getTextContent().trim());
        String unit = m.getAttribute("unit").isEmpty() ? "KiB" : m.getAttribute("unit");
        switch (unit) {
            case "b": case "bytes": return value;
            case "KiB": case "k": return value << 10;
            case "MiB": case "M": return value << 20;
            case "GiB": case "G": return value << 30;
            case "KB": return value * 1000;
            case "MB": return value * 1000_000;
            case "GB": return value * 1000_000_000L;
            default: throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "unknown memory unit " + unit);
        }
    }

    /** True when guest RAM is a shared file that the daemon can map. */
    public boolean hasSharedFileMemory() {
        Optional<Element> mb = child(root(), "memoryBacking");
        if (mb.isEmpty()) {
            return false;
        }
        boolean file = child(mb.get(), "source").map(s -> "file".equals(s.getAttribute("type"))).orElse(false);
        boolean shared = child(mb.get(), "access").map(a -> "shared".equals(a.getAttribute("mode"))).orElse(false);
        return file && shared;
    }

    /**
     * One {@code <disk>} of the domain as colo judges it.
     *
     * @param device disk, lun, cdrom or floppy
     * @param type where the data lives: file, block, network, volume
     * @param format the driver's type: raw, qcow2 (empty when unstated)
     * @param pciAddress {@code <address type='pci'>} as "bus:slot.function" in hex, or empty
     */
    public record Disk(String target, String device, String bus, String type, String source, String format, boolean readOnly,
            boolean shareable, String pciAddress, String alias) {
        /** Written by the guest, so the SVM needs a copy of it. CD-ROMs, floppies and {@code <readonly/>} disks are not. */
        public boolean writable() {
            return (device.equals("disk") || device.equals("lun")) && !readOnly;
        }

        @Override
        public String toString() {
            return target + " (" + source + ")";
        }
    }

    /** Every {@code <disk>} of the domain, in order. */
    public List<Disk> disks() {
        List<Disk> out = new ArrayList<>();
        for (Element d : deviceElements("disk")) {
            String device = d.getAttribute("device").isEmpty() ? "disk" : d.getAttribute("device");
            String source = child(d, "source").map(src -> {
                for (String a : new String[] {"file", "dev", "name", "volume"}) {
                    if (!src.getAttribute(a).isEmpty()) {
                        return src.getAttribute(a);
                    }
                }
                return "";
            }).orElse("");
            String pci = child(d, "address").filter(a -> "pci".equals(a.getAttribute("type")))
                    .map(a -> hex(a.getAttribute("bus")) + ":" + hex(a.getAttribute("slot")) + "." + hex(a.getAttribute("function"))).orElse("");
            out.add(new Disk(child(d, "target").map(t -> t.getAttribute("dev")).orElse(""), device,
                    child(d, "target").map(t -> t.getAttribute("bus")).orElse(""), d.getAttribute("type"), source,
                    child(d, "driver").map(t -> t.getAttribute("type")).orElse(""), child(d, "readonly").isPresent(),
                    child(d, "shareable").isPresent(), pci, child(d, "alias").map(a -> a.getAttribute("name")).orElse("")));
        }
        // An SVM that took over keeps its replicated disks on QEMU's command line, out of libvirt's sight.
        NodeList args = root().getElementsByTagNameNS(QEMU_NS, "arg");
        for (int i = 0; i < args.getLength(); i++) {
            String v = ((Element) args.item(i)).getAttribute("value");
            java.util.regex.Matcher m = COLO_REPLICA.matcher(v);
            if (m.find()) {
                out.add(new Disk(m.group(1), "disk", "virtio", COLO_REPLICA_TYPE, v, "", false, false, "", "colo-disk-" + m.group(1)));
            }
        }
        return out;
    }

    /** The type {@link #disks} gives a disk that colo made an SVM's replicated disk ({@link #withReplicatedDisk}). */
    public static final String COLO_REPLICA_TYPE = "colo-replica";
    private static final java.util.regex.Pattern COLO_REPLICA = java.util.regex.Pattern.compile("(?:^|,)id=colo-([^,]+),driver=replication,");

    private static String hex(String libvirtNumber) {
        if (libvirtNumber.isEmpty()) {
            return "0";
        }
        return Integer.toHexString(libvirtNumber.startsWith("0x") ? Integer.parseInt(libvirtNumber.substring(2), 16)
                : Integer.parseInt(libvirtNumber));
    }

    /** The domain's writable disks (target name and source), in order: what an SVM needs a copy of. */
    public List<String> writableDisks() {
        List<String> out = new ArrayList<>();
        for (Disk d : disks()) {
            if (d.writable()) {
                out.add(d.toString());
            }
        }
        return out;
    }

    /** The alias libvirt gave disk {@code target} in a running domain's XML (QEMU's device id). */
    public Optional<String> diskAlias(String target) {
        return disks().stream().filter(d -> d.target().equals(target) && !d.alias().isEmpty()).map(Disk::alias).findFirst();
    }

    /**
     * Disk {@code target} as an SVM's disk: QEMU's block replication driver in secondary mode over
     * {@code active} (qcow2) over {@code hidden} (qcow2) over {@code base} (raw, colo's copy of the
     * PVM's disk), on a virtio-blk device at the PVM's PCI address. libvirt has no XML for the
     * replication driver, so the disk leaves libvirt's {@code <devices>} and is given to QEMU on its
     * command line. The SVM's own writes stay in the overlays, which QEMU's COLO checkpoint empties
     * and its failover commits into the base. {@code base} is opened without locking: colo writes it
     * while the SVM is stopped, and a fresh standby opens it beside the SVM it replaces.
     */
    public DomainXml withReplicatedDisk(String target, java.nio.file.Path base, java.nio.file.Path active, java.nio.file.Path hidden) {
        DomainXml c = copy();
        Element disk = null;
        for (Element d : c.deviceElements("disk")) {
            if (c.child(d, "target").map(t -> target.equals(t.getAttribute("dev"))).orElse(false)) {
                disk = d;
            }
        }
        if (disk == null) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "the domain has no disk '" + target + "' to replicate");
        }
        Disk described = disks().stream().filter(d -> d.target().equals(target)).findFirst().orElseThrow();
        if (!described.bus().equals("virtio")) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "disk " + target + " is on bus '" + described.bus()
                    + "'; colo replicates virtio disks only");
        }
        if (described.pciAddress().isEmpty()) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "disk " + target + " has no PCI address in the PVM's definition; "
                    + "the SVM's disk must sit at the same address");
        }
        for (java.nio.file.Path p : List.of(base, active, hidden)) {
            if (p.toString().contains(",")) {
                throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "disk file " + p + " has a comma in its path, which QEMU's options cannot take");
            }
        }
        disk.getParentNode().removeChild(disk);
        String[] pci = described.pciAddress().split("[:.]");
        int bus = Integer.parseInt(pci[0], 16);
        boolean q35 = c.child(c.root(), "os").flatMap(os -> c.child(os, "type")).map(t -> t.getAttribute("machine").contains("q35"))
                .orElse(false);
        // libvirt's names for QEMU's PCI buses: the root bus, and its bridges by index.
        String busName = bus != 0 ? "pci." + bus : q35 ? "pcie.0" : "pci.0";
        String baseId = "colo-base-" + target;
        String drive = "colo-" + target;
        c.commandLine("-drive", "if=none,id=" + baseId + ",driver=raw,file.driver=file,file.filename=" + base + ",file.locking=off");
        c.commandLine("-drive", "if=none,id=" + drive + ",driver=replication,mode=secondary,top-id=" + drive + ",file.driver=qcow2,file.file.filename="
                + active + ",file.backing.driver=qcow2,file.backing.file.filename=" + hidden + ",file.backing.backing=" + baseId);
        c.commandLine("-device", "virtio-blk-pci,drive=" + drive + ",id=colo-disk-" + target + ",bus=" + busName + ",addr=0x" + pci[1]
                + (pci[2].equals("0") ? "" : "." + pci[2]));
        return c;
    }

    private List<Element> deviceElements(String tag) {
        List<Element> out = new ArrayList<>();
        child(root(), "devices").ifPresent(d -> {
            for (Node n = d.getFirstChild(); n != null; n = n.getNextSibling()) {
                if (n instanceof Element e && tag.equals(e.getTagName())) {
                    out.add(e);
                }
            }
        });
        return out;
    }

    /** Appends arguments to the {@code <qemu:commandline>} (created when missing). */
    private void commandLine(String... values) {
        Element cl;
        NodeList existing = root().getElementsByTagNameNS(QEMU_NS, "commandline");
        if (existing.getLength() > 0) {
            cl = (Element) existing.item(0);
        } else {
            cl = doc.createElementNS(QEMU_NS, "qemu:commandline");
            root().appendChild(cl);
        }
        for (String v : values) {
            Element arg = doc.createElementNS(QEMU_NS, "qemu:arg");
            arg.setAttribute("value", v);
            cl.appendChild(arg);
        }
    }

    /** The MAC addresses of the domain's NICs, in order. */
    public List<String> macAddresses() {
        List<String> macs = new ArrayList<>();
        for (Element nic : interfaces()) {
            child(nic, "mac").ifPresent(m -> macs.add(m.getAttribute("address")));
        }
        return macs;
    }

    public DomainXml withName(String name) {
        DomainXml c = copy();
        c.setChildText(c.root(), "name", name);
        return c;
    }

    public DomainXml withUuid(String uuid) {
        DomainXml c = copy();
        c.setChildText(c.root(), "uuid", uuid);
        return c;
    }

    public DomainXml withAccelerator(String type) {
        DomainXml c = copy();
        c.root().setAttribute("type", type);
        return c;
    }

    /** Guest RAM as a shared file, so the daemon can map it and a standby can reuse it. */
    public DomainXml withSharedFileMemory() {
        DomainXml c = copy();
        Element mb = c.child(c.root(), "memoryBacking").orElseGet(() -> c.appendAfter(c.root(), "memoryBacking", "currentMemory", "memory"));
        for (String n : List.of("source", "access")) {
            c.child(mb, n).ifPresent(mb::removeChild);
        }
        Element source = c.doc.createElement("source");
        source.setAttribute("type", "file");
        mb.appendChild(source);
        Element access = c.doc.createElement("access");
        access.setAttribute("mode", "shared");
        mb.appendChild(access);
        return c;
    }

    /**
     * Replaces every NIC with one virtio NIC that is a QEMU socket netdev connecting to the daemon's
     * proxy at {@code host:port}. The MAC is kept so the guest's network identity does not change.
     */
    public DomainXml withProxyNic(String mac, String host, int port) {
        DomainXml c = copy();
        Element devices = c.devices();
        // The first NIC's PCI address stays: an SVM must have every device where its PVM has it,
        // and libvirt would otherwise give the new NIC the first free slot.
        Optional<Element> address = c.interfaces().stream().findFirst().flatMap(n -> c.child(n, "address"))
                .filter(a -> "pci".equals(a.getAttribute("type")));
        for (Element nic : c.interfaces()) {
            devices.removeChild(nic);
        }
        Element nic = c.doc.createElement("interface");
        nic.setAttribute("type", "client");
        Element m = c.doc.createElement("mac");
        m.setAttribute("address", mac);
        nic.appendChild(m);
        Element src = c.doc.createElement("source");
        src.setAttribute("address", host);
        src.setAttribute("port", Integer.toString(port));
        nic.appendChild(src);
        Element model = c.doc.createElement("model");
        model.setAttribute("type", "virtio");
        nic.appendChild(model);
        address.ifPresent(a -> nic.appendChild(a.cloneNode(true)));
        devices.appendChild(nic);
        return c;
    }

    /**
     * Adds a second QMP monitor on a Unix socket that QEMU listens on ({@link DirectMonitor}): colo's
     * checkpoint commands skip libvirtd's round trip. Idempotent; replaces an earlier one.
     */
    public DomainXml withDirectMonitor(java.nio.file.Path socket) {
        if (socket.toString().contains(",") || !socket.getFileName().toString().startsWith(DIRECT_MONITOR_PREFIX)) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "monitor socket " + socket + " must be named " + DIRECT_MONITOR_PREFIX
                    + "... and have no comma in its path");
        }
        DomainXml c = copy();
        NodeList args = c.root().getElementsByTagNameNS(QEMU_NS, "arg");
        for (int i = 0; i < args.getLength() - 1; i++) {
            Element a = (Element) args.item(i);
            Element next = (Element) args.item(i + 1);
            if ("-qmp".equals(a.getAttribute("value")) && isDirectMonitor(next.getAttribute("value"))) {
                next.setAttribute("value", "unix:" + socket + ",server=on,wait=off");
                return c;
            }
        }
        c.commandLine("-qmp", "unix:" + socket + ",server=on,wait=off");
        return c;
    }

    /** colo's monitor socket is known by its file name. */
    public static final String DIRECT_MONITOR_PREFIX = "colo-monitor-";

    private static boolean isDirectMonitor(String qmpArg) {
        if (!qmpArg.startsWith("unix:")) {
            return false;
        }
        int comma = qmpArg.indexOf(',');
        String path = comma < 0 ? qmpArg.substring(5) : qmpArg.substring(5, comma);
        return java.nio.file.Path.of(path).getFileName().toString().startsWith(DIRECT_MONITOR_PREFIX);
    }

    /** The socket of colo's direct monitor, if the domain has one ({@link #withDirectMonitor}). */
    public Optional<java.nio.file.Path> directMonitor() {
        NodeList args = root().getElementsByTagNameNS(QEMU_NS, "arg");
        for (int i = 0; i < args.getLength() - 1; i++) {
            String v = ((Element) args.item(i + 1)).getAttribute("value");
            if ("-qmp".equals(((Element) args.item(i)).getAttribute("value")) && isDirectMonitor(v)) {
                int comma = v.indexOf(',');
                return Optional.of(java.nio.file.Path.of(comma < 0 ? v.substring(5) : v.substring(5, comma)));
            }
        }
        return Optional.empty();
    }

    /** Adds {@code -incoming defer}: the standby starts, then waits for device state. */
    public DomainXml asIncomingStandby() {
        DomainXml c = copy();
        NodeList args = c.root().getElementsByTagNameNS(QEMU_NS, "arg");
        for (int i = 0; i < args.getLength(); i++) {
            if ("-incoming".equals(((Element) args.item(i)).getAttribute("value"))) {
                return c;
            }
        }
        c.commandLine("-incoming", "defer");
        return c;
    }

    public String toXml() {
        try {
            Transformer t = TransformerFactory.newInstance().newTransformer();
            t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
            t.setOutputProperty(OutputKeys.INDENT, "no");
            StringWriter w = new StringWriter();
            t.transform(new DOMSource(doc), new StreamResult(w));
            return w.toString();
        } catch (Exception e) {
            throw new IllegalStateException("cannot serialise domain XML", e);
        }
    }

    @Override
    public String toString() {
        return toXml();
    }

    // --- DOM helpers ---

    private Element devices() {
        return child(root(), "devices").orElseGet(() -> {
            Element d = doc.createElement("devices");
            root().appendChild(d);
            return d;
        });
    }

    private List<Element> interfaces() {
        return deviceElements("interface");
    }

    private Optional<Element> child(Element parent, String name) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && name.equals(e.getTagName())) {
                return Optional.of(e);
            }
        }
        return Optional.empty();
    }

    private Optional<String> text(Element parent, String name) {
        return child(parent, name).map(e -> e.getTextContent().trim());
    }

    private void setChildText(Element parent, String name, String value) {
        Element e = child(parent, name).orElseGet(() -> {
            Element n = doc.createElement(name);
            parent.insertBefore(n, parent.getFirstChild());
            return n;
        });
        e.setTextContent(value);
    }

    /** Appends a new element right after the first existing sibling named in {@code after}. */
    private Element appendAfter(Element parent, String name, String... after) {
        Element e = doc.createElement(name);
        for (String a : after) {
            Optional<Element> anchor = child(parent, a);
            if (anchor.isPresent()) {
                parent.insertBefore(e, anchor.get().getNextSibling());
                return e;
            }
        }
        parent.appendChild(e);
        return e;
    }
}
